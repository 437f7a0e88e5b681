"""Build a bm25s index folder from a stream of passages in bounded memory (what `SearchIndex.open` runs).

`bm25s.BM25.index` needs every passage's tokens at once: Python lists of token ids for the whole corpus, then
three flat arrays of every posting, then their CSC copy. A 1M-passage build peaks at about 3 GB that way, so
wiki-18 (21M) would need about 60 GB. Here the corpus is read once, in chunks:

1. per chunk: its passages go to the on-disk store (search/store.py), its texts through the very tokeniser
   `SearchIndex.build` uses, and its postings (term, passage, term frequency), sorted by term, to a spill
   file under `<index>/.build/`; the global vocabulary, document frequencies and passage lengths grow as it goes;
2. once every chunk is read, the global IDF and mean length are known: the score matrix is written column
   block by column block, each block gathered from every chunk's spill (a contiguous slice, since each is
   sorted by term), scored with bm25s's Lucene formula and appended to `data.csc.index.npy` and
   `indices.csc.index.npy`.

The folder is what `bm25s.BM25.save` writes (same file names, params, vocabulary), so `bm25s.BM25.load`
reads it, and the arrays equal an in-memory `bm25s.BM25.index` of the same passages bit for bit
(tests/test_index_build.py): same postings in the same order, and scores computed with the same float64
operations in the same order before the cast to float32. Only the vocabulary's ids differ (bm25s numbers
stems in a set's order, which changes with every process's string hashing; here new stems are numbered in
sorted order, chunk by chunk), which changes no score and no ranking.

Why this and not the alternatives (measured with the synthetic corpus of bench/corpus.py, 2 cores):
- shards (several bm25s indexes merged at query time) change the scores: each shard has its own IDF and
  mean length, so results would differ from one index of the same corpus; and a query pays once per shard.
- two passes over the corpus (count, then score) tokenise twice: tokenising is about half of a build.
- postings kept in memory instead of spilled: 12 bytes a posting, about 45 postings a passage, so 2.7 GB at
  5M and 11 GB at 21M; the spill costs one sequential write and read of the same bytes.
Peak memory is then one chunk's tokens and postings (about 100-300 MB at CHUNK_PASSAGES), one merge block
(BLOCK_POSTINGS postings, about 500 MB of working arrays), plus 16 bytes per passage (lengths, offsets,
ids) and the vocabulary.
"""

import itertools
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import bm25s
import numpy as np
from bm25s.scoring import _build_idf_array, _select_idf_scorer

from sage_dspy.errors import SageError
from sage_dspy.search.passages import Passage
from sage_dspy.search.store import PassageWriter


class UnsearchableCorpusError(SageError, ValueError):
    """No passage has a word the index keeps: every search would find nothing."""

    def __init__(self, passages: int):
        super().__init__(f"none of the {passages} passages has a searchable word (only stopwords, numbers or "
                         "punctuation); give a corpus of real text, or pick its text column with --text-field")


CHUNK_PASSAGES = 100_000  # passages tokenised at a time
BLOCK_POSTINGS = 10_000_000  # postings scored and written at a time in the merge
SPILL_DIR = ".build"
DATA_FILE, INDICES_FILE, INDPTR_FILE = "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy"
VOCAB_FILE, PARAMS_FILE = "vocab.index.json", "params.index.json"


def write_index(passages: Iterable[Passage], directory: Path, tokenize: Callable, indexed_text: Callable, *,
                chunk_passages: int = CHUNK_PASSAGES, block_postings: int = BLOCK_POSTINGS) -> dict:
    """Write the bm25s arrays and the passage store of `passages` into `directory`; returns
    {"fingerprint", "passages", "postings", "vocabulary"}. `tokenize` and `indexed_text` are SearchIndex's."""
    directory = Path(directory)
    spill = directory / SPILL_DIR
    spill.mkdir(parents=True, exist_ok=True)
    params = bm25s.BM25()  # its defaults (k1, b, method, dtypes) are what SearchIndex.build indexes with
    if params.method != "lucene" or params.idf_method != "lucene":
        raise NotImplementedError(f"write_index scores with bm25s's Lucene formula, not {params.method!r}")
    try:
        vocab, df, lengths, chunks, (fingerprint, n_passages) = _spill_chunks(
            passages, directory, spill, tokenize, indexed_text, chunk_passages)
        if not lengths.any():
            raise UnsearchableCorpusError(n_passages)
        indptr = np.zeros(len(df) + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        idf = _build_idf_array(dict(enumerate(df.tolist())), n_docs=n_passages,
                               compute_idf_fn=_select_idf_scorer(params.idf_method), dtype=params.dtype)
        _merge(chunks, directory, indptr, idf, lengths, params, block_postings)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    np.save(directory / INDPTR_FILE, indptr)
    vocab.setdefault("", len(vocab))  # bm25s.BM25.index adds the empty token last (create_empty_token)
    (directory / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / PARAMS_FILE).write_text(json.dumps(
        {"k1": params.k1, "b": params.b, "delta": params.delta, "method": params.method,
         "idf_method": params.idf_method, "dtype": params.dtype, "int_dtype": params.int_dtype,
         "num_docs": n_passages, "version": bm25s.__version__, "backend": params.backend}, indent=4))
    return {"fingerprint": fingerprint, "passages": n_passages, "postings": int(indptr[-1]),
            "vocabulary": len(vocab)}


def batches(passages: Iterable[Passage], size: int) -> Iterator[list[Passage]]:
    """Lists of `size` passages (the last one shorter), read from the stream as they are needed."""
    iterator = iter(passages)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _spill_chunks(passages, directory: Path, spill: Path, tokenize, indexed_text, chunk_passages: int):
    """Pass 1: store the passages, tokenise chunk by chunk, spill each chunk's postings sorted by term."""
    writer = PassageWriter(directory)
    vocab: dict[str, int] = {}
    df = np.zeros(0, dtype=np.int64)
    lengths: list[np.ndarray] = []
    chunks: list = []
    start = 0
    for batch in batches(passages, chunk_passages):
        writer.add(batch)
        tokens = tokenize([indexed_text(p) for p in batch])
        local_to_global = _extend_vocab(vocab, tokens.vocab)
        chunk_lengths = np.fromiter(map(len, tokens.ids), dtype=np.int64, count=len(batch))
        flat = np.fromiter(itertools.chain.from_iterable(tokens.ids), dtype=np.int64, count=int(chunk_lengths.sum()))
        del tokens
        keys = local_to_global[flat] * len(batch) + np.repeat(np.arange(len(batch), dtype=np.int64), chunk_lengths)
        keys, tf = np.unique(keys, return_counts=True)  # sorted by term, then passage: one entry per pair
        terms = keys // len(batch)
        chunk = {name: spill / f"{len(chunks):05d}.{name}.npy" for name in ("term", "doc", "tf")}
        np.save(chunk["term"], terms.astype(np.int32))
        np.save(chunk["doc"], (keys % len(batch) + start).astype(np.int32))
        np.save(chunk["tf"], tf.astype(np.int32))
        counts = np.bincount(terms, minlength=len(vocab))
        counts[:len(df)] += df
        df = counts
        lengths.append(chunk_lengths)
        chunks.append(chunk)
        start += len(batch)
    stored = writer.close()
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    return vocab, df, all_lengths, chunks, stored


def _extend_vocab(vocab: dict[str, int], local: dict[str, int]) -> np.ndarray:
    """Number the chunk's new stems (in sorted order, so a corpus always gets the same ids); the global id
    of each of the chunk's local ids."""
    for stem in sorted(stem for stem in local if stem not in vocab):
        vocab[stem] = len(vocab)
    local_to_global = np.zeros(len(local), dtype=np.int64)
    for stem, local_id in local.items():
        local_to_global[local_id] = vocab[stem]
    return local_to_global


def _merge(chunks: list[dict], directory: Path, indptr: np.ndarray, idf: np.ndarray, lengths: np.ndarray,
           params: bm25s.BM25, block_postings: int) -> None:
    """Pass 2: the CSC arrays, one block of terms at a time, appended to their .npy files."""
    total = int(indptr[-1])
    spilled = [_SpilledChunk(chunk) for chunk in chunks]
    mean_length = lengths.mean()  # what bm25s computes: np.array([len(doc) ...]).mean(), float64
    with _npy_appender(directory / DATA_FILE, params.dtype, total) as data, \
            _npy_appender(directory / INDICES_FILE, params.int_dtype, total) as indices:
        first = 0
        n_terms = len(indptr) - 1
        while first < n_terms:
            last = max(first + 1, int(np.searchsorted(indptr, indptr[first] + block_postings, side="right")) - 1)
            last = min(last, n_terms)
            parts = [chunk.postings(first, last) for chunk in spilled]
            terms = np.concatenate([p[0] for p in parts])
            order = np.argsort(terms, kind="stable")  # chunks are in passage order: each term's passages ascend
            docs = np.concatenate([p[1] for p in parts])[order]
            tf = np.concatenate([p[2] for p in parts])[order].astype(params.dtype)
            terms = terms[order]
            del parts, order
            data.write(_lucene_scores(tf, lengths[docs], mean_length, idf[terms], params).data)
            indices.write(docs.astype(params.int_dtype).data)
            first = last


class _SpilledChunk:
    """One chunk's spill files. A block's slices are read with plain reads, not through a memory map: mapped
    pages count in the process's RSS until the kernel reclaims them, so merging through maps made the build's
    peak grow with the whole spill (12 bytes a posting, about 3 GB at 5M passages) instead of one block."""

    def __init__(self, paths: dict[str, Path]):
        self.paths = paths
        self.terms = np.load(paths["term"], mmap_mode="r")  # binary-searched only: a few pages a block

    def postings(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(terms, docs, tf) of the postings of terms first .. last - 1, in spill order."""
        lo, hi = (int(i) for i in np.searchsorted(self.terms, [first, last]))
        return tuple(_read_slice(self.paths[name], lo, hi) for name in ("term", "doc", "tf"))


def _read_slice(path: Path, lo: int, hi: int) -> np.ndarray:
    """Items lo .. hi - 1 of a 1-d .npy file, read into memory."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        _, _, dtype = read_header(file)
        file.seek(lo * dtype.itemsize, 1)
        return np.fromfile(file, dtype=dtype, count=hi - lo)


def _lucene_scores(tf: np.ndarray, doc_lengths: np.ndarray, mean_length, idf: np.ndarray, params) -> np.ndarray:
    """bm25s.scoring's Lucene score, idf * tf / (k1 * (1 - b + b * len / mean) + tf), with its dtypes: the
    length factor in float64 (a Python int over numpy's float64 mean), tf float32 promoted to float64 by it,
    idf float32, the product cast to float32 when bm25s stores it."""
    k1, b = params.k1, params.b
    # In place, one float64 temporary at a time (a block's working memory is this function's): the same
    # operations on the same operands as k1 * ((1 - b) + b * len / mean), so the same bits.
    denominator = doc_lengths.astype(np.float64)
    denominator *= b
    denominator /= mean_length
    denominator += 1 - b
    denominator *= k1
    denominator += tf
    ratio = tf.astype(np.float64)
    ratio /= denominator
    del denominator
    scores = idf.astype(np.float64)
    scores *= ratio
    return scores.astype(params.dtype)


class _npy_appender:
    """A .npy file of a known dtype and length, its contents appended in order with write()."""

    def __init__(self, path: Path, dtype: str, length: int):
        self.path, self.dtype, self.length = path, np.dtype(dtype), length

    def __enter__(self):
        header = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=(self.length,))
        offset = header.offset
        del header
        self._file = open(self.path, "r+b")
        self._file.seek(offset)
        self._end = offset + self.length * self.dtype.itemsize
        return self._file

    def __exit__(self, *exc_info) -> None:
        written = self._file.tell()
        self._file.close()
        if exc_info[0] is None and written != self._end:
            raise RuntimeError(f"{self.path}: wrote {written} bytes, expected {self._end}")
