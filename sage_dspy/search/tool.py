"""The search tool the agents call: a backend (the embedded bm25s index or a retrieval server) behind the name
and docstring dspy.ReAct shows the LM."""

import inspect
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sage_dspy.search.index import SearchIndex
from sage_dspy.search.passages import Hit, Passage, format_failure, format_hits
from sage_dspy.breaker import BackendFault, check as check_breaker, raise_in_agent
from sage_dspy.search.remote import RemoteIndex, SearchFailed


class Searcher(Protocol):
    """What the tool searches: SearchIndex (search/index.py) or RemoteIndex (search/remote.py)."""

    def search(self, query: str, k: int = 3) -> list[Hit]: ...


def open_searcher(passages: Sequence[Passage], retriever: str = "", index_root: Path | None = None) -> Searcher:
    """The retrieval server at `retriever`, or (for "") the embedded index of these passages, cached on disk."""
    if retriever:
        return RemoteIndex(retriever)
    return SearchIndex.open(passages) if index_root is None else SearchIndex.open(passages, root=index_root)


class SearchTool:
    """The search tool given to dspy.ReAct: `dspy.Tool(SearchTool(index))` or `SearchTool(index).as_tool()`.

    dspy.Tool names a callable object by its `__name__` and describes it by its `__doc__` (which for an
    instance is this class docstring), so both are set per instance: the name "search" and the
    agent-facing docstring of `__call__`, with k filled in.
    """

    name = "search"

    def __init__(self, index: Searcher, k: int = 3):
        self.index = index
        self.k = k
        self.calls = 0
        self._lock = threading.Lock()
        self.__name__ = self.name
        self.__doc__ = inspect.cleandoc(type(self).__call__.__doc__).replace("up to 3 ", f"up to {k} ")

    def __getstate__(self) -> dict:
        """Pickle the tool's settings, never its index: a logged program must not carry a whole corpus. A
        program loaded from MLflow is rebuilt over the user's corpus (sage_dspy.runs.program.build_program)."""
        return {key: value for key, value in self.__dict__.items() if key not in ("index", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, index=None, _lock=threading.Lock())

    def __deepcopy__(self, memo: dict) -> "SearchTool":
        """Optimizers deep-copy programs; every copy searches the same read-only index, so share the tool."""
        return self

    def __call__(self, query: str) -> str:
        """Search the document collection with a keyword query; returns up to 3 passages, best first.

        Each passage comes with its title and id, as "[rank] Title (id: ...)" followed by its text.
        Write short keyword queries about ONE entity or fact at a time (a name, a title, a date);
        to answer a multi-step question, search once per step and reuse names found in earlier passages.
        If nothing useful comes back, try other keywords or a different entity.
        """
        if self.index is None:
            raise RuntimeError("this search tool was unpickled without its index; rebuild the program over a "
                               "corpus with sage_dspy.runs.program.build_program")
        with self._lock:
            self.calls += 1
        try:
            check_breaker()
            return format_hits(self.index.search(query, self.k))
        except BackendFault as fault:  # void: the agent stops (lm.react), rather than read the fault as data
            raise_in_agent(fault)
        except SearchFailed as failure:  # the server's answer was unusable: the agent reads it and goes on
            return format_failure(failure.kind, str(failure))

    def as_tool(self):
        """This tool as a `dspy.Tool` (name "search", args {"query": string})."""
        import dspy  # imported here so that retrieval stays usable without loading DSPy

        return dspy.Tool(self)
