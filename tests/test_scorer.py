"""The fast backend's query (search/scorer.py) against bm25s's own scorers on the same arrays."""

import importlib.util
import threading

import sage_dspy  # noqa: F401  (offline env defaults first)

import numpy as np
import pytest

from bench.corpus import CorpusSpec, generate, sample_queries
from sage_dspy.search import index as retrieval
from sage_dspy.search import scorer
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.passages import Passage
from sage_dspy.search.scorer import SparseScorer

needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba not installed")
CORPUS = generate(CorpusSpec(3_000, seed=5))
QUERIES = sample_queries(CORPUS, 80, seed=6) + ["the first city", "school school school"]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scorer-index")
    SearchIndex.write(iter(CORPUS), directory)
    return directory


@pytest.fixture(scope="module")
def index(index_dir) -> SearchIndex:
    return SearchIndex.load(index_dir)  # 3,000 passages: the numpy backend, so index._scorer is None


def terms(index: SearchIndex, query: str) -> list[str]:
    return [t for t in retrieval._query_terms(query) if t in index._retriever.vocab_dict]


def term_ids(index: SearchIndex, query: str) -> list[int]:
    return index._retriever.get_tokens_ids(terms(index, query))


def bm25s_top(index: SearchIndex, query: str, k: int, backend: str):
    """bm25s's answer on the same arrays, as [(row, score)] ordered as the scorer promises (score, then row)."""
    retriever = index._retriever
    retriever.backend = backend
    try:
        [rows], [scores] = retriever.retrieve([terms(index, query)], k=k, show_progress=False, n_threads=0)
    finally:
        retriever.backend = "numpy"
    pairs = [(int(r), float(s)) for r, s in zip(rows, scores) if s > 0]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def dense_top(index: SearchIndex, query: str, k: int):
    """The definition, by brute force: every passage's float32 score summed term by term, then the k best by
    score and, among equal scores, by row."""
    arrays = index._retriever.scores
    scores = np.zeros(int(arrays["num_docs"]), dtype=np.float32)
    for term in term_ids(index, query):
        start, end = arrays["indptr"][term], arrays["indptr"][term + 1]
        np.add.at(scores, arrays["indices"][start:end], arrays["data"][start:end])
    best = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return [(int(row), float(scores[row])) for row in best if scores[row] > 0]


def python_top_k(index: SearchIndex, ids, k: int):
    """The kernel run as plain Python (no numba): its logic, on fresh buffers."""
    arrays = index._retriever.scores
    n = int(arrays["num_docs"])
    buffers = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.int32)
    rows, scores = np.zeros(k, dtype=np.int32), np.zeros(k, dtype=np.float32)
    found = scorer._top_k(np.asarray(ids, dtype=np.int64), arrays["data"], arrays["indptr"], arrays["indices"], k,
                          *buffers, rows, scores)
    assert not buffers[0].any(), "the kernel leaves its score buffer all zero"
    return [(int(r), float(s)) for r, s in zip(rows[:found], scores[:found])]


@pytest.mark.parametrize("k", [1, 3, 10])
def test_kernel_logic_gives_bm25s_rows_and_scores(index, k):
    for query in QUERIES[:40]:
        expected = dense_top(index, query, k)
        assert python_top_k(index, term_ids(index, query), k) == expected, query
        assert sorted(score for _, score in expected) == sorted(s for _, s in bm25s_top(index, query, k, "numpy"))


@needs_numba
@pytest.mark.parametrize("k", [1, 3, 10, 200])
def test_compiled_scorer_gives_bm25s_numba_scores_to_the_bit(index, k):
    """The rows are the definition's (dense_top); the scores are bm25s's numba scorer's, bit for bit, and so are
    the rows wherever no two of its top k + 1 scores are equal (bm25s orders equal scores as its heap left them)."""
    sparse = SparseScorer(index._retriever.scores)
    untied = total = 0
    for query in QUERIES:
        rows, scores = sparse.top_k(term_ids(index, query), k)
        mine = [(int(r), float(s)) for r, s in zip(rows, scores)]
        assert mine == dense_top(index, query, k), query
        theirs = bm25s_top(index, query, k, "numba")
        assert [s for _, s in mine] == [s for _, s in theirs], query
        wider = [s for _, s in bm25s_top(index, query, k + 1, "numba")]
        unique = [place for place, (_, score) in enumerate(mine) if wider.count(score) == 1]
        assert [mine[place] for place in unique] == [theirs[place] for place in unique], query
        untied, total = untied + len(unique), total + len(mine)
    assert untied > total // 5  # so the row comparison above really compared rows (k=200: many ties)


def test_equal_scores_go_to_the_lower_row(tmp_path):
    twins = [Passage(f"p{i}", "Gloubrai", "the gloubrai river") for i in range(6)]
    others = [Passage(f"q{i}", f"Other {i}", f"filler words number {i}") for i in range(5)]
    SearchIndex.write(iter(others[:2] + twins + others[2:]), tmp_path)
    index = SearchIndex.load(tmp_path)
    ids = term_ids(index, "gloubrai")
    assert python_top_k(index, ids, 4) == [(row, python_top_k(index, ids, 1)[0][1]) for row in (2, 3, 4, 5)]
    if importlib.util.find_spec("numba") is not None:
        rows, _ = SparseScorer(index._retriever.scores).top_k(ids, 4)
        assert rows.tolist() == [2, 3, 4, 5]


@needs_numba
def test_fewer_hits_than_k_and_k_zero(index):
    sparse = SparseScorer(index._retriever.scores)
    rare = next(i for i in range(len(index._retriever.scores["indptr"]) - 1)
                if index._retriever.scores["indptr"][i + 1] - index._retriever.scores["indptr"][i] == 2)
    rows, scores = sparse.top_k([rare], 5)
    assert len(rows) == 2 and (scores > 0).all()
    rows, scores = sparse.top_k([rare], 0)
    assert len(rows) == 0 and len(scores) == 0


@needs_numba
def test_threads_share_the_scorer_and_get_the_serial_answers(index):
    sparse = SparseScorer(index._retriever.scores)
    serial = {q: [(int(r), float(s)) for r, s in zip(*sparse.top_k(term_ids(index, q), 3))] for q in QUERIES}
    wrong = []

    def search_all(offset: int) -> None:
        for query in QUERIES[offset:] + QUERIES[:offset]:
            got = [(int(r), float(s)) for r, s in zip(*sparse.top_k(term_ids(index, query), 3))]
            if got != serial[query]:
                wrong.append(query)

    threads = [threading.Thread(target=search_all, args=(i * 7,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong
    buffers = []
    while not sparse._buffers.empty():
        buffers.append(sparse._buffers.get_nowait())
    assert 1 <= len(buffers) <= 8 and not any(scores.any() for scores, _ in buffers)


@needs_numba
def test_search_index_uses_it_for_the_fast_backend(index, index_dir, monkeypatch):
    monkeypatch.setattr(retrieval, "NUMBA_MIN_PASSAGES", 1)
    fast = SearchIndex.load(index_dir)
    assert fast._retriever.backend == "numba" and fast._scorer is not None and index._scorer is None
    for query in QUERIES[:20]:
        assert [(h.passage.id, h.score) for h in fast.search(query, 3)] == \
            [(index.passages[r].id, s) for r, s in bm25s_top(index, query, 3, "numba")]
