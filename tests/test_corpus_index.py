"""A local corpus streamed into its index once, then opened from the index alone (search/corpus_index.py)."""

import json
import os

import sage_dspy  # noqa: F401  (offline env defaults first)

import pytest

from sage_dspy.runs.seeds import draw_seeds, seed_stream
from sage_dspy.search import corpus as corpus_module
from sage_dspy.search.corpus import CorpusError, load_corpus
from sage_dspy.search.corpus_index import open_corpus, open_corpus_index, SOURCES_DIR
from sage_dspy.search.passages import corpus_fingerprint
from sage_dspy.search.store import PassageStore

RECORDS = [{"id": f"d{i}", "title": f"Place {i}", "text": f"Place {i} was founded in {1800 + i} by river traders."}
           for i in range(30)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def source(tmp_path):
    return write_jsonl(tmp_path / "corpus.jsonl", RECORDS + RECORDS[:3])  # three repeats, dropped by the reader


def forbid_reading(monkeypatch):
    def read(*args, **kwargs):
        raise AssertionError("the source was read again")
    monkeypatch.setattr(corpus_module, "_read_source", read)


def test_passages_are_load_corpus_s_and_the_second_open_reads_nothing(source, tmp_path, monkeypatch):
    expected = load_corpus(source)
    index = open_corpus_index(source, root=tmp_path / "indexes")
    assert isinstance(index.passages, PassageStore) and list(index.passages) == expected
    assert index.fingerprint == corpus_fingerprint(expected) == corpus_fingerprint(index.passages)
    assert [hit.passage.id for hit in index.search("founded in 1807", 1)] == ["d7"]
    forbid_reading(monkeypatch)
    again = open_corpus(source, root=tmp_path / "indexes")
    assert list(again) == expected and again.fingerprint == index.fingerprint
    assert len(list((tmp_path / "indexes" / SOURCES_DIR).iterdir())) == 1


def test_seeds_drawn_from_the_store_are_those_drawn_from_the_list(source, tmp_path):
    store = open_corpus(source, root=tmp_path / "indexes")
    listed = load_corpus(source)
    assert draw_seeds(store, 12, (2, 5), 3) == draw_seeds(listed, 12, (2, 5), 3)
    stream, listed_stream = seed_stream(store, (2, 5), 3), seed_stream(listed, (2, 5), 3)
    assert [next(stream) for _ in range(20)] == [next(listed_stream) for _ in range(20)]


def test_a_changed_file_or_other_options_are_read_again(source, tmp_path):
    root = tmp_path / "indexes"
    first = open_corpus(source, root=root)
    write_jsonl(source, RECORDS[:10])
    os.utime(source, ns=(1, 1))  # even with an old time: the size changed
    changed = open_corpus(source, root=root)
    assert len(changed) == 10 and changed.fingerprint != first.fingerprint
    windows = open_corpus(source, root=root, max_words=4, overlap_words=1)
    assert list(windows) == load_corpus(source, max_words=4, overlap_words=1) and len(windows) > 10
    assert len(list((root / SOURCES_DIR).iterdir())) == 3


def test_a_folder_of_texts_and_a_new_file_in_it(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("# Harbor Bridge\nHarbor Bridge opened in 1932.\n", encoding="utf-8")
    root = tmp_path / "indexes"
    assert [p.title for p in open_corpus(folder, root=root)] == ["Harbor Bridge"]
    (folder / "b.md").write_text("# Old Mill\nThe Old Mill burned in 1871.\n", encoding="utf-8")
    assert [p.title for p in open_corpus(folder, root=root)] == ["Harbor Bridge", "Old Mill"]


def test_an_empty_corpus_is_one_line_and_leaves_no_index(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    root = tmp_path / "indexes"
    with pytest.raises(CorpusError, match="has no passages; point --corpus at a file with text"):
        open_corpus(empty, root=root)
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_a_bad_line_midway_leaves_no_index_and_no_record(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n{not json\n", encoding="utf-8")
    root = tmp_path / "indexes"
    with pytest.raises(CorpusError, match="line 2"):
        open_corpus(bad, root=root)
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_with_a_retrieval_server_the_passages_are_stored_without_an_index(source, tmp_path, monkeypatch):
    root = tmp_path / "indexes"
    passages = open_corpus(source, retriever="http://127.0.0.1:9/retrieve", root=root)
    assert isinstance(passages, PassageStore) and list(passages) == load_corpus(source)
    assert passages.fingerprint == corpus_fingerprint(load_corpus(source))
    assert not list(root.rglob("*.csc.index.npy"))  # nothing tokenised, no score arrays
    forbid_reading(monkeypatch)
    assert list(open_corpus(source, retriever="http://127.0.0.1:9/retrieve", root=root)) == list(passages)
    with pytest.raises(AssertionError, match="read again"):  # the index's record is another one
        open_corpus(source, root=root)


def test_a_stale_record_pointing_at_a_missing_index_builds_it_again(source, tmp_path):
    root = tmp_path / "indexes"
    first = open_corpus(source, root=root)
    for path in sorted((root / first.fingerprint).iterdir()):
        path.unlink()
    (root / first.fingerprint).rmdir()
    assert list(open_corpus(source, root=root)) == list(first)
