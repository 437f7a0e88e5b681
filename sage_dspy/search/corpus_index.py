"""A corpus as its search index: read once, streamed into the index, and afterwards opened without reading it.

Every command needs a corpus's passages (the seeds are drawn from them) and, unless a retrieval server
searches, its bm25s index. Loading the passages into a list costs their whole text in memory (21M wiki-18
passages: tens of GB) and a full read of the source on every run; but the index already keeps every passage
on disk (search/store.py). So a local source (a file, or a folder of text files) is streamed into its index
the first time (SearchIndex.open_stream: bounded memory), and `sources/<key>.json` under the index root
remembers which index it gave, keyed by what identifies its content without reading it: each file's resolved
path, size and modification time, the reading options and READER_VERSION. Later runs open that index and take
its on-disk store as their passages, reading nothing of the source. A changed file, other options or a new
reader give another key, so the source is read again (and, when its passages are the same, the same index is
found by their fingerprint). A Hugging Face dataset name has no such identity: it is loaded as before.

With a retrieval server (`--retriever`) nothing here searches, so the passages go to a store of their own
(root/passages/<fingerprint>/, search/store.py's files), written in one pass without tokenising, and are
remembered the same way, with the number of texts the reader split. The seeds come from these passages and the
agents' evidence from the server, so their ids must agree: a corpus with texts longer than a passage is
refused unless the server is `sage serve-index`, which splits them as this reader does (a retriever such as
Search-R1's returns whole documents under their own ids).
"""

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sage_dspy.environment import ARTIFACTS
from sage_dspy.outputs import disk_full_as_one_line
from sage_dspy.search.corpus import (CorpusError, load_corpus, non_empty, PASSAGE_WORDS, read_corpus, ReadCount,
                                    READER_VERSION, source_files)
from sage_dspy.search.identity import read_index_identity
from sage_dspy.search.build import batches
from sage_dspy.search.index import is_index_of, SearchIndex
from sage_dspy.search.passages import Passage
from sage_dspy.search.staging import staging_folder
from sage_dspy.search.store import has_store, PassageStore, PassageWriter

SOURCES_DIR = "sources"  # under the index root: one small JSON file per source read
STORES_DIR, STORE_META = "passages", "store.json"  # passages without an index (runs with --retriever)
STORE_BATCH = 10_000


def open_corpus(source: str | Path, *, retriever: str = "", root: Path = ARTIFACTS / "indexes",
                **options) -> Sequence[Passage]:
    """A run's passages: the on-disk store of the corpus's index (built on first use), or, when a retrieval
    server searches (`retriever`), a store of the passages alone: no index is needed here then, and tokenising
    wiki-18 would take hours. `options`: read_corpus's."""
    if retriever:
        passages, split_documents = _open_store(source, root, options)
        if split_documents:
            _check_server_splits(retriever, source, split_documents, options.get("max_words", PASSAGE_WORDS))
        return passages
    return open_corpus_index(source, root=root, **options).passages


def _check_server_splits(retriever: str, source: str | Path, split_documents: int, max_words: int) -> None:
    """Refuse split texts unless the server splits them alike (see the module docstring)."""
    identity = read_index_identity(retriever)
    if identity.served_by_sage:
        return
    texts = f"corpus {source} has {split_documents} text(s) longer than {max_words} words, which sage splits into "
    if identity.fault:
        raise CorpusError(texts + "passages under ids of its own, and the retriever could not be asked whether it "
                          f"splits them alike ({identity.problem}); start it and run again, or split the corpus "
                          f"into passages of at most {max_words} words first")
    raise CorpusError(texts + "passages under ids of its own while the retriever (not `sage serve-index`) returns "
                      f"whole documents under its ids; split the corpus into passages of at most {max_words} words "
                      "first, as Search-R1's wiki-18 is, or serve it with `sage serve-index`")


def open_corpus_index(source: str | Path, *, root: Path = ARTIFACTS / "indexes", **options) -> SearchIndex:
    """The search index of `source` read with `options`, its passages on disk; reads the source only when
    no index is known for it as it is now."""
    identity = source_identity(source, options)
    if identity is None:
        return SearchIndex.open(load_corpus(source, **options), root=root)
    record = _record_of(root, identity)
    fingerprint = _known_fingerprint(record)
    if fingerprint and is_index_of(Path(root) / fingerprint, fingerprint):
        return SearchIndex.load(Path(root) / fingerprint)
    label, passages = read_corpus(source, **options)
    index = SearchIndex.open_stream(non_empty(passages, label), root)
    _remember(record, index.fingerprint, source, identity)
    return index


def open_corpus_store(source: str | Path, *, root: Path = ARTIFACTS / "indexes", **options) -> Sequence[Passage]:
    """The passages of `source` in an on-disk store of their own (root/passages/<fingerprint>/), written in one
    streaming pass; a list for a dataset name."""
    return _open_store(source, root, options)[0]


def _open_store(source: str | Path, root: Path, options: dict) -> tuple[Sequence[Passage], int]:
    """open_corpus_store's passages, and how many texts the reader split into several."""
    reading = ReadCount()
    identity = source_identity(source, options)
    if identity is None:
        label, passages = read_corpus(source, count=reading, **options)
        return list(non_empty(passages, label)), reading.split_documents
    identity["only"] = "passages"  # another record than the index's of the same source
    record = _record_of(root, identity)
    fingerprint, split_documents = _known_fingerprint(record), _known_split(record)
    stores = Path(root) / STORES_DIR
    if fingerprint and split_documents is not None and _is_store_of(stores / fingerprint, fingerprint):
        return PassageStore(stores / fingerprint, fingerprint), split_documents
    label, passages = read_corpus(source, count=reading, **options)
    with staging_folder(stores) as staging:  # a killed build's folder is swept by the next build
        with disk_full_as_one_line(stores, "nothing of the new passage store was kept"):
            fingerprint = _write_store(staging, non_empty(passages, label))
        if not _is_store_of(stores / fingerprint, fingerprint):
            try:
                os.rename(staging, stores / fingerprint)
            except OSError:  # another process published the same passages first: theirs is as good
                if not _is_store_of(stores / fingerprint, fingerprint):
                    raise
    _remember(record, fingerprint, source, {**identity, "split_documents": reading.split_documents})
    return PassageStore(stores / fingerprint, fingerprint), reading.split_documents


def _write_store(staging: Path, passages) -> str:
    writer = PassageWriter(staging)
    for batch in batches(passages, STORE_BATCH):
        writer.add(batch)
    fingerprint, count = writer.close()
    (staging / STORE_META).write_text(json.dumps({"fingerprint": fingerprint, "passages": count}))
    return fingerprint


def _is_store_of(directory: Path, fingerprint: str) -> bool:
    return _known_fingerprint(directory / STORE_META) == fingerprint and has_store(directory)


def source_identity(source: str | Path, options: dict) -> dict | None:
    """What identifies a local source's passages without reading it; None for a dataset name."""
    files = source_files(source)
    if files is None:
        return None
    stats = [(str(file.resolve()), file.stat()) for file in files]
    return {"files": [[path, stat.st_size, stat.st_mtime_ns] for path, stat in stats],
            "options": dict(sorted(options.items())), "reader": READER_VERSION}


def _record_of(root: Path, identity: dict) -> Path:
    """The small file that remembers what a source read with these options gave."""
    key = hashlib.sha1(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return Path(root) / SOURCES_DIR / f"{key}.json"


def _remember(record: Path, fingerprint: str, source: str | Path, identity: dict) -> None:
    _write_atomically(record, {"fingerprint": fingerprint, "source": str(source), **identity})


def _known_fingerprint(record: Path) -> str | None:
    return _known(record, "fingerprint", str)


def _known_split(record: Path) -> int | None:
    """The texts split when the record was written; None for a record from before they were counted (the
    source is then read again, and its store found by fingerprint)."""
    return _known(record, "split_documents", int)


def _known(record: Path, name: str, kind: type):
    """The `name` field of a small JSON file when it is of `kind`; None for no file, no field, or another kind."""
    try:
        value = json.loads(record.read_text(encoding="utf-8")).get(name)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, kind) else None


def _write_atomically(path: Path, data: dict) -> None:
    """Written beside and renamed into place: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(temporary, path)
