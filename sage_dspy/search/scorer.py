"""The fast backend's query: top-k BM25 over bm25s's score arrays, in time that grows with the postings a
query reads, not with the corpus.

bm25s's numba scorer (`_retrieve_internal_jitted`) gives every query a fresh `np.zeros(num_docs)` (20 MB at 5M
passages, page-faulted in anew each time) and then scans every passage's score for the top k; both grow with
the corpus, whatever the query. Here each query:

1. adds its terms' precomputed scores into a buffer reused across queries, listing each passage the first
   time it gets a score (Lucene scores are positive, so a zero in the buffer means "not touched yet");
2. picks the top k among the touched passages only, zeroing each as it goes, so the buffer is clean for the
   next query.

Scores are bm25s's to the bit: the same float32 additions in the same order (term by term in query order,
each term's postings in row order). Ranking: higher score first, and among equal scores the lower row, so a
query always gets the same passages. bm25s keeps equal scores in whatever order its heap left them (its numpy
backend: argpartition's), so only where scores tie can the rows differ from bm25s's (tests/test_scorer.py).

Buffers are pooled: numba releases the GIL during a query, so threads search at once, each with a buffer of its
own (8 bytes a passage, touched pages only), and the pool holds as many as ever ran at once.
"""

import queue

import numpy as np

_compiled = None


def _top_k(term_ids, data, indptr, indices, k, scores, touched, top_rows, top_scores):
    """Fill top_rows/top_scores (best first) and return how many were found; leaves `scores` all zero."""
    n_touched = 0
    for term in term_ids:
        for j in range(indptr[term], indptr[term + 1]):
            row = indices[j]
            if scores[row] == 0.0:
                touched[n_touched] = row
                n_touched += 1
            scores[row] += data[j]
    found = 0
    for i in range(n_touched):
        row = touched[i]
        score = scores[row]
        scores[row] = 0.0
        if found == k and not (score > top_scores[k - 1] or (score == top_scores[k - 1] and row < top_rows[k - 1])):
            continue
        place = found if found < k else k - 1  # the full list's last entry falls out
        while place > 0 and (score > top_scores[place - 1]
                             or (score == top_scores[place - 1] and row < top_rows[place - 1])):
            top_scores[place] = top_scores[place - 1]
            top_rows[place] = top_rows[place - 1]
            place -= 1
        top_scores[place] = score
        top_rows[place] = row
        if found < k:
            found += 1
    return found


def _kernel():
    """`_top_k` compiled (cache=True: numba's cache, NUMBA_CACHE_DIR or __pycache__, spares every later process
    the compilation); numba is imported only here, as it is an optional extra."""
    global _compiled
    if _compiled is None:
        from numba import njit

        _compiled = njit(nogil=True, cache=True)(_top_k)
    return _compiled


class SparseScorer:
    """Top-k queries over one bm25s CSC score matrix (`retriever.scores`); safe to call from many threads."""

    def __init__(self, scores: dict):
        self.data, self.indptr, self.indices = scores["data"], scores["indptr"], scores["indices"]
        self.num_docs = int(scores["num_docs"])
        self._buffers: queue.SimpleQueue = queue.SimpleQueue()

    def top_k(self, term_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the best k passages for these token ids, best first; fewer when fewer have a
        score (every row returned scored above 0)."""
        kernel = _kernel()
        k = max(0, min(int(k), self.num_docs))
        top_rows = np.zeros(k, dtype=self.indices.dtype)
        top_scores = np.zeros(k, dtype=self.data.dtype)
        if k == 0:
            return top_rows, top_scores
        buffers = self._take()
        found = kernel(np.asarray(term_ids, dtype=np.int64), self.data, self.indptr, self.indices, k,
                       *buffers, top_rows, top_scores)
        self._buffers.put(buffers)  # only once the kernel has left it all zero
        return top_rows[:found], top_scores[:found]

    def _take(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._buffers.get_nowait()
        except queue.Empty:  # every pooled buffer is in use by another thread: one more
            return (np.zeros(self.num_docs, dtype=self.data.dtype),
                    np.empty(self.num_docs, dtype=self.indices.dtype))
