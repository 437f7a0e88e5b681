"""A bm25s index over passages, cached on disk per corpus (one folder per corpus fingerprint)."""

import importlib.util
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import bm25s
import Stemmer

from sage_dspy.environment import ARTIFACTS
from sage_dspy.outputs import OutputError, disk_full_as_one_line
from sage_dspy.search.build import (DATA_FILE, INDICES_FILE, INDPTR_FILE, PARAMS_FILE, SPILL_DIR, VOCAB_FILE,
                                    UnsearchableCorpusError, write_index)
from sage_dspy.search.passages import Hit, Passage, corpus_fingerprint
from sage_dspy.search.scorer import SparseScorer
from sage_dspy.search.staging import staging_folder
from sage_dspy.search.store import STORE_FILES, has_store, PassageStore, write_passages

INDEX_FORMAT = 3  # bump when tokenisation or the saved layout changes: cached indexes are then rebuilt
# 3: passages in an on-disk store (search/store.py) instead of bm25s's corpus.jsonl read whole at load
META_FILE = "sage_index.json"  # written last by save(); marks a complete index
# Every file an index folder has held, in any format so far: bm25s's (with its corpus, before format 3), the
# passage store's, the metadata. A rebuild removes these and nothing else.
INDEX_FILES = {META_FILE, DATA_FILE, INDICES_FILE, INDPTR_FILE, VOCAB_FILE, PARAMS_FILE,
               "nonoccurrence_array.index.npy", "corpus.jsonl", "corpus.mmindex.json", *STORE_FILES}


# numba scores a query ~15-50x faster but costs every new process its import and a compiled scorer: ~5.5 s of
# JIT when this choice was measured (bm25s 0.3.16, 2 cores, 400 real questions, k=3, numpy vs numba after JIT:
#     300 passages: 0.06 ms vs 0.016 ms;   6 014: 0.38 ms vs 0.025 ms;   60 000: 5.8 ms vs 0.11 ms),
# 0.3-0.9 s now that search/scorer.py's kernel is cached on disk. Either way it pays off only for large corpora.
NUMBA_MIN_PASSAGES = 50_000


def choose_backend(n_passages: int) -> str:
    """"numba" for large corpora when numba is installed (pip install sage-dspy[fast]), else "numpy"."""
    if n_passages >= NUMBA_MIN_PASSAGES and importlib.util.find_spec("numba") is not None:
        return "numba"
    return "numpy"


def _tokenize(texts: list[str]) -> bm25s.tokenization.Tokenized:
    # A fresh Stemmer per call: a PyStemmer instance "must not be called concurrently" (its docs), and
    # creating one costs < 1 µs. Queries and the index must use the same stemmer and stopwords.
    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)


def _query_terms(query: str) -> list[str]:
    [terms] = bm25s.tokenize([query], stopwords="en", stemmer=Stemmer.Stemmer("english"),
                             return_ids=False, show_progress=False)
    return terms


# Agents search for one entity at a time ("new york city"), and the passage *about* an entity should beat
# passages that merely mention it. Repeating the title is a plain BM25F-style field boost; on the 6k-passage
# dev corpus it lifted the title passage into the top 3 for far more entity-name queries.
TITLE_WEIGHT = 3


def _indexed_text(passage: Passage) -> str:
    return "\n".join([passage.title] * TITLE_WEIGHT + [passage.text])


class SearchIndex:
    """BM25 over title (boosted) + text of each passage. Build it, or `open` a cached one for a corpus.

    A loaded index keeps its passages on disk (search/store.py) and its score arrays memory-mapped, so
    opening one costs about the same at 10k and at 5M passages; a built one holds them in memory.
    """

    def __init__(self, retriever: bm25s.BM25, passages: Sequence[Passage], fingerprint: str | None = None):
        self._retriever = retriever
        if isinstance(passages, PassageStore):
            self.passages: Sequence[Passage] = passages
            self._position = passages.position
        else:
            self.passages = tuple(passages)
            positions = {passage.id: i for i, passage in enumerate(self.passages)}
            if len(positions) != len(self.passages):
                raise ValueError("passage ids must be unique; load passages with "
                                 "sage_dspy.search.corpus.load_corpus")
            self._position = positions.__getitem__
        self._fingerprint = fingerprint
        # the fast backend queries through search/scorer.py (time grows with the postings a query reads); its
        # "zero means untouched" needs positive scores, which Lucene's IDF gives (our builds use no other)
        self._scorer = (SparseScorer(retriever.scores) if retriever.backend == "numba" and retriever.method == "lucene"
                        else None)

    @property
    def fingerprint(self) -> str:
        """corpus_fingerprint of the passages (stored with a saved index, so never recomputed on load)."""
        if self._fingerprint is None:
            self._fingerprint = corpus_fingerprint(self.passages)
        return self._fingerprint

    @classmethod
    def build(cls, passages: Sequence[Passage]) -> "SearchIndex":
        """An index in memory, through `bm25s.BM25.index` (every passage's tokens at once: for small corpora;
        `write` builds large ones in bounded memory, with the same scores)."""
        tokens = _tokenize([_indexed_text(p) for p in passages])
        if not any(tokens.ids):
            raise UnsearchableCorpusError(len(passages))
        retriever = bm25s.BM25(backend=choose_backend(len(passages)))
        retriever.index(tokens, show_progress=False)
        return cls(retriever, passages)

    @classmethod
    def write(cls, passages: Iterable[Passage], directory: Path, **sizes) -> dict:
        """Build the index of a stream of passages straight into `directory`, in bounded memory (search/build.py;
        `sizes`: chunk_passages, block_postings); returns what `load` reads from its metadata."""
        built = write_index(passages, directory, _tokenize, _indexed_text, **sizes)
        meta = {"format": INDEX_FORMAT, "fingerprint": built["fingerprint"], "passages": built["passages"]}
        (Path(directory) / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        return meta

    @classmethod
    def open(cls, passages: Iterable[Passage], root: Path = ARTIFACTS / "indexes", *,
             fingerprint: str | None = None) -> "SearchIndex":
        """Load the index of these passages from root/<fingerprint>/, building it there first if needed.

        `fingerprint` (their corpus_fingerprint, when the caller knows it) lets `passages` be a one-pass
        iterator: it is then read only when the index has to be built."""
        fingerprint = fingerprint or corpus_fingerprint(passages)
        directory = Path(root) / fingerprint
        if not _is_complete(directory, fingerprint):
            return cls.open_stream(passages, root)
        return cls.load(directory)

    @classmethod
    def open_stream(cls, passages: Iterable[Passage], root: Path = ARTIFACTS / "indexes") -> "SearchIndex":
        """The index of a one-pass stream of passages whose fingerprint is not known before: built beside
        root/, then moved to root/<fingerprint>/ (kept as it is when a complete one is there already)."""
        with staging_folder(root) as staging:  # a killed build's folder is swept by the next build
            with disk_full_as_one_line(Path(root), "nothing of the new index was kept"):
                fingerprint = cls.write(passages, staging)["fingerprint"]
            directory = Path(root) / fingerprint
            if not _is_complete(directory, fingerprint):
                _publish(staging, directory, fingerprint)
        return cls.load(directory)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(directory), show_progress=False)
        fingerprint, n_passages = write_passages(self.passages, directory)
        meta = {"format": INDEX_FORMAT, "fingerprint": fingerprint, "passages": n_passages}
        (directory / META_FILE).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = True) -> "SearchIndex":
        """The index saved in `directory`: score arrays memory-mapped (or read, mmap=False), passages on disk."""
        meta = _read_meta(Path(directory))
        if meta is None:
            raise FileNotFoundError(f"{directory} holds no sage-dspy search index; build one with "
                                    "SearchIndex.build(passages).save(directory) or use SearchIndex.open")
        if meta.get("format") != INDEX_FORMAT or not has_store(Path(directory)):
            raise FileNotFoundError(f"{directory} holds a search index of an older format ({meta.get('format')}, "
                                    f"this version reads {INDEX_FORMAT}); SearchIndex.open rebuilds it, or delete "
                                    "the folder")
        retriever = bm25s.BM25.load(str(directory), mmap=mmap, load_corpus=False, show_progress=False,
                                    backend=choose_backend(meta["passages"]))
        return cls(retriever, PassageStore(directory, meta["fingerprint"]), meta["fingerprint"])

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The top-k passages for `query`, best first; [] when no query word is in the corpus."""
        k = min(k, len(self.passages))
        # Keep only words the index knows. With none left, bm25s would score every passage 0 (numpy
        # backend) or raise (token ids above the vocabulary), so an empty, all-stopword or unknown-word
        # query returns [] here instead of reaching retrieve().
        terms = [t for t in _query_terms(query or "") if t and t in self._retriever.vocab_dict]
        if k < 1 or not terms:
            return []
        if self._scorer is not None:
            rows, scores = self._scorer.top_k(self._retriever.get_tokens_ids(terms), k)
        else:
            [rows], [scores] = self._retriever.retrieve([terms], k=k, show_progress=False, n_threads=0)
        hits = [Hit(self.passages[int(row)], float(score), rank)
                for rank, (row, score) in enumerate(zip(rows, scores), start=1)]
        return [hit for hit in hits if hit.score > 0]

    def get(self, passage_id: str) -> Passage:
        return self.passages[self._position(passage_id)]

    def __len__(self) -> int:
        return len(self.passages)


def _read_meta(directory: Path) -> dict | None:
    try:
        return json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(directory: Path, fingerprint: str) -> bool:
    meta = _read_meta(directory)
    return meta is not None and meta.get("format") == INDEX_FORMAT and meta.get("fingerprint") == fingerprint


def _publish(staging: Path, directory: Path, fingerprint: str) -> None:
    """Move a finished index into place with one rename, so a crash never leaves a half index there."""
    if directory.exists() and not _is_complete(directory, fingerprint):
        _check_replaceable(directory)
        shutil.rmtree(directory)  # an index of an older format, or a folder left empty: replace it
    try:
        os.rename(staging, directory)
    except OSError:
        if not _is_complete(directory, fingerprint):  # a concurrent open() that got there first is fine
            raise




def _check_replaceable(directory: Path) -> None:
    """Only what sage wrote is removed (outputs.py's rule): an index's own files, of any format so far (a half-
    written or older one is replaced), and its build's spill; anything else there stops the rebuild."""
    foreign = sorted(entry.name for entry in directory.iterdir()
                     if not (entry.name == SPILL_DIR and entry.is_dir()) and
                     not (entry.name in INDEX_FILES and entry.is_file()))
    if foreign:
        raise OutputError(f"{directory} is where this corpus's index goes, but it holds files sage did not write "
                          f"({', '.join(foreign[:3])}); move them out of it, then re-run")


def is_index_of(directory: Path, fingerprint: str) -> bool:
    """Whether `directory` holds the complete index of the corpus with this fingerprint, in today's format."""
    return _is_complete(Path(directory), fingerprint)


def pack_index(directory: Path) -> dict[str, bytes]:
    """An index folder's files, to send to a machine that cannot read the folder (sage_dspy.scale)."""
    return {path.name: path.read_bytes() for path in sorted(Path(directory).iterdir()) if path.is_file()}


def unpack_index(files: dict[str, bytes], root: Path, fingerprint: str) -> Path:
    """`pack_index`'s files as root/<fingerprint>/ (written beside, then one rename, as `SearchIndex.open`
    does), unless a complete copy is there already; returns the folder."""
    directory = Path(root) / fingerprint
    if not _is_complete(directory, fingerprint):
        with staging_folder(root) as staging:  # a killed worker's folder is swept by the next build, as any
            for name, data in files.items():
                (staging / name).write_bytes(data)
            _publish(staging, directory, fingerprint)
    return directory
