"""Passages and search over them: corpora from any source, the BM25 index, and the search tool the
agents call. Imports nothing else from sage_dspy but the root's answers, environment, errors, breaker, outputs
(where an index may be written) and ports (serve-index's).
"""
