"""The bounded-memory build (search/build.py) and the on-disk passage store (search/store.py), against the
in-memory bm25s build they replace for large corpora."""

import json

import sage_dspy  # noqa: F401  (offline env defaults first)

import bm25s
import numpy as np
import pytest

from bench.corpus import CorpusSpec, generate, sample_queries
from sage_dspy.search import index as retrieval
from sage_dspy.search.index import INDEX_FORMAT, META_FILE, SearchIndex
from sage_dspy.search.passages import corpus_fingerprint, Passage
from sage_dspy.search.store import PassageStore

CORPUS = generate(CorpusSpec(1_500, seed=3))
QUERIES = sample_queries(CORPUS, 60, seed=4)


@pytest.fixture(scope="module")
def reference() -> SearchIndex:
    return SearchIndex.build(CORPUS)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """The same corpus through write(): a one-pass iterator, 7 chunks, merge blocks of 997 postings."""
    directory = tmp_path_factory.mktemp("streamed")
    meta = SearchIndex.write(iter(CORPUS), directory, chunk_passages=211, block_postings=997)
    return directory, meta


def postings_by_stem(retriever: bm25s.BM25) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    scores = retriever.scores
    return {stem: (np.asarray(scores["indices"][scores["indptr"][i]:scores["indptr"][i + 1]]),
                   np.asarray(scores["data"][scores["indptr"][i]:scores["indptr"][i + 1]]))
            for stem, i in retriever.vocab_dict.items() if stem}


def test_chunked_build_equals_one_in_memory_build(reference, streamed):
    directory, meta = streamed
    mine = bm25s.BM25.load(str(directory), mmap=False)
    theirs, ours = postings_by_stem(reference._retriever), postings_by_stem(mine)
    assert ours.keys() == theirs.keys()
    for stem, (rows, scores) in theirs.items():  # global IDF and mean length: the same float32 bits
        assert np.array_equal(ours[stem][0], rows), stem
        assert np.array_equal(ours[stem][1], scores), stem
    assert mine.scores["num_docs"] == len(CORPUS) and mine.scores["indptr"][-1] == len(reference._retriever.scores["data"])
    assert meta == {"format": INDEX_FORMAT, "fingerprint": corpus_fingerprint(CORPUS), "passages": len(CORPUS)}


def test_chunked_index_searches_as_the_in_memory_one(reference, streamed):
    loaded = SearchIndex.load(streamed[0])
    for query in QUERIES:
        assert loaded.search(query, k=5) == reference.search(query, k=5)
    assert loaded.fingerprint == reference.fingerprint


def test_chunk_size_changes_no_posting_and_no_stored_byte(streamed, tmp_path):
    SearchIndex.write(CORPUS, tmp_path, chunk_passages=10_000)  # one chunk, one block
    one, many = (postings_by_stem(bm25s.BM25.load(str(d), mmap=False)) for d in (tmp_path, streamed[0]))
    assert one.keys() == many.keys()
    assert all(np.array_equal(one[s][0], many[s][0]) and np.array_equal(one[s][1], many[s][1]) for s in one)
    for name in ("passages.jsonl", "passages.offsets.npy", "passages.ids.npy", "passages.id_rows.npy"):
        assert (tmp_path / name).read_bytes() == (streamed[0] / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------- the store

ODD = [Passage("é-1", 'A "quoted"\ntitle', "text with\nnewlines, tabs\t and ünïcode ✓"),
       Passage("b", "", "x"), Passage("a" * 40, "Long id", "the longest id"), Passage("a", "Short", "the shortest")]


def test_store_reads_back_every_passage_and_finds_ids(tmp_path):
    SearchIndex.build(ODD).save(tmp_path)
    store = PassageStore(tmp_path)
    assert len(store) == 4 and list(store) == ODD and store[-1] == ODD[-1] and store[1:3] == ODD[1:3]
    assert [store.position(p.id) for p in ODD] == [0, 1, 2, 3]
    for missing in ("", "c", "a" * 41, "é"):
        with pytest.raises(KeyError):
            store.position(missing)
    with pytest.raises(IndexError):
        store[4]
    lines = (tmp_path / "passages.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines][0] == {"id": "é-1", "title": ODD[0].title, "text": ODD[0].text}


def test_a_loaded_index_looks_up_passages_on_disk(tmp_path):
    SearchIndex.write(ODD, tmp_path)
    loaded = SearchIndex.load(tmp_path)
    assert isinstance(loaded.passages, PassageStore) and len(loaded) == 4
    assert loaded.get("a") == ODD[3] and loaded.search("newlines")[0].passage == ODD[0]
    with pytest.raises(KeyError):
        loaded.get("zzz")


def test_write_refuses_repeated_ids_and_wordless_corpora(tmp_path):
    with pytest.raises(ValueError, match="unique.*'same'"):
        SearchIndex.write([Passage("same", "A", "alpha"), Passage("same", "B", "beta")], tmp_path / "a")
    with pytest.raises(ValueError, match="no.*searchable word|none of the 2 passages"):
        SearchIndex.write([Passage("1", "", "the of"), Passage("2", "", "!!")], tmp_path / "b")
    assert not (tmp_path / "a" / META_FILE).exists() and not (tmp_path / "a" / ".build").exists()


def test_open_takes_a_one_pass_stream_with_its_fingerprint(tmp_path):
    fingerprint = corpus_fingerprint(CORPUS[:50])
    first = SearchIndex.open(iter(CORPUS[:50]), root=tmp_path, fingerprint=fingerprint)
    again = SearchIndex.open(iter(()), root=tmp_path, fingerprint=fingerprint)  # cached: the stream is not read
    assert len(again) == 50 and again.search(QUERIES[0]) == first.search(QUERIES[0])


def test_an_index_of_the_previous_format_is_refused_by_load_and_rebuilt_by_open(tmp_path):
    fingerprint = corpus_fingerprint(ODD)
    old = tmp_path / fingerprint
    retriever = bm25s.BM25()
    retriever.index(retrieval._tokenize([retrieval._indexed_text(p) for p in ODD]), show_progress=False)
    retriever.save(str(old), corpus=[{"id": p.id, "title": p.title, "text": p.text} for p in ODD], show_progress=False)
    (old / META_FILE).write_text(json.dumps({"format": 2, "fingerprint": fingerprint, "passages": 4}))
    with pytest.raises(FileNotFoundError, match="older format"):
        SearchIndex.load(old)
    reopened = SearchIndex.open(ODD, root=tmp_path)
    assert reopened.get("b") == ODD[1] and json.loads((old / META_FILE).read_text())["format"] == INDEX_FORMAT
    assert not (old / "corpus.jsonl").exists()


def test_a_killed_builds_staging_folder_is_swept_and_a_live_ones_never(tmp_path, tiny_passages):
    """What a SIGKILLed build leaves (its staging folder and lock file, no holder) goes at the next build; a
    build in progress in another process (its lock held) is left alone until that process is gone."""
    import os
    import subprocess
    import sys
    import time

    def staging(name: str, *, lock: bool):
        folder = tmp_path / f".building-{name}"
        (folder / "spill").mkdir(parents=True)
        (folder / "spill" / "chunk-0.npy").write_bytes(b"\0" * 64)
        if lock:
            (tmp_path / f".building-{name}.lock").write_text("")
        return folder

    killed, live, old, recent = (staging("killed", lock=True), staging("live", lock=True),
                                 staging("old", lock=False), staging("recent", lock=False))
    hour_ago = time.time() - 2 * 3600
    for path in (old, *old.rglob("*")):
        os.utime(path, (hour_ago, hour_ago))
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
                               str(tmp_path / ".building-live.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        SearchIndex.open(list(tiny_passages), root=tmp_path)
        assert not killed.exists() and not (tmp_path / ".building-killed.lock").exists()
        assert not old.exists()  # a version without locks left it, untouched for hours
        assert live.exists() and recent.exists()  # in progress, or maybe: never touched
    finally:
        holder.kill()
        holder.wait()
    SearchIndex.open_stream(list(tiny_passages), root=tmp_path)  # its holder is gone now
    assert not live.exists()
    assert sorted(p.name for p in tmp_path.glob(".building-*")) == [".building-recent"]
