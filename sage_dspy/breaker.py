"""The run's circuit breaker: a backend (the retriever, or a role's LM) that keeps failing at the infrastructure
stops the run instead of turning every remaining seed into a void record that a real provider bills for.

Each backend's calls are watched after their own retries (RemoteIndex's, DSPy's): the breaker trips when one
backend fails `in_a_row` times in a row, or when `rate` or more of its last `window` calls failed. Once it has
tripped, no seed starts, and every further call of the run (LM or search) raises `BreakerOpen` before it is
made: the seeds in flight end at their next call, recorded as void, and a plain re-run redoes them.

One breaker watches a run at a time, process-wide (`watching`): the optimizer's threads in `sage compile` and
the seeds' threads reach it without carrying a context. Outside `watching`, `observe` and `check` do nothing.

The faults themselves (`BackendFault`) are defined here too, with the one piece of plumbing they need: leaving
a dspy.ReAct agent as an exception rather than as an observation it would read (`agent_run`).
"""

import contextlib
import threading
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass

from sage_dspy.errors import SageError

RETRIEVER = "the retriever"
EXIT_CODE = 75  # sysexits' EX_TEMPFAIL: a temporary failure; the same command again resumes the run


class BackendFault(Exception):
    """A backend failed at the infrastructure (unreachable, 5xx, timeout, refused) after its retries: the work
    that met it is void, neither a verdict nor a search. `kind` is stable and short (the record says it)."""

    def __init__(self, backend: str, kind: str, message: str):
        super().__init__(message)
        self.backend, self.kind = backend, kind


class BreakerOpen(BackendFault):
    """A call not made because the breaker has tripped."""


_agent_faults: ContextVar[list | None] = ContextVar("sage_agent_faults", default=None)


@contextlib.contextmanager
def agent_run():
    """One agent's run (a ReAct forward). dspy.ReAct turns any exception a tool raises into an observation the
    agent reads, so a tool notes its BackendFault here too (`raise_in_agent`), and the agent raises it at its
    next LM call (`pending_fault`): the fault leaves the agent instead of being read as data, at no extra call."""
    token = _agent_faults.set([])
    try:
        yield
    finally:
        _agent_faults.reset(token)


def raise_in_agent(fault: BackendFault):
    faults = _agent_faults.get()
    if faults is not None:
        faults.append(fault)
    raise fault


def pending_fault() -> BackendFault | None:
    faults = _agent_faults.get()
    return faults[0] if faults else None


class BackendDown(SageError, RuntimeError):
    """The run stopped on a tripped breaker; its line names the backend and the figures. Not bad input: the CLI
    exits with EXIT_CODE, and the folder resumes."""

    exit_code = EXIT_CODE


@dataclass(frozen=True)
class BreakerLimits:
    """When the breaker trips. 0 turns a test off (both 0: never trips)."""

    in_a_row: int = 5  # infrastructure failures in a row of one backend
    rate: float = 0.5  # share of failed calls among a backend's last `window` calls
    window: int = 20

    def __post_init__(self):
        if self.in_a_row < 0 or self.window < 0 or not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"breaker limits out of range: {self}")

    def describe(self) -> str:
        return f"{self.in_a_row} in a row, or {self.rate:.0%} of the last {self.window} calls"


class Breaker:
    def __init__(self, limits: BreakerLimits | None = None):
        self.limits = limits or BreakerLimits()
        self._lock = threading.Lock()
        self._in_a_row: dict[str, int] = {}
        self._recent: dict[str, deque] = {}
        self.calls: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.reason = ""  # set once, when it trips

    @property
    def tripped(self) -> bool:
        return bool(self.reason)

    def observe(self, backend: str, ok: bool) -> None:
        with self._lock:
            self.calls[backend] = self.calls.get(backend, 0) + 1
            recent = self._recent.setdefault(backend, deque(maxlen=max(self.limits.window, 1)))
            recent.append(ok)
            if ok:
                self._in_a_row[backend] = 0
                return
            self.failures[backend] = self.failures.get(backend, 0) + 1
            self._in_a_row[backend] = self._in_a_row.get(backend, 0) + 1
            if not self.reason:
                self.reason = self._trip_reason(backend, recent)

    def _trip_reason(self, backend: str, recent: deque) -> str:
        limits, in_a_row = self.limits, self._in_a_row[backend]
        if limits.in_a_row and in_a_row >= limits.in_a_row:
            return f"{backend} failed {in_a_row} calls in a row"
        failed = recent.count(False)
        if limits.window and limits.rate and len(recent) >= limits.window and failed >= limits.rate * len(recent):
            return f"{backend} failed {failed} of its last {len(recent)} calls"
        return ""

    def check(self) -> None:
        """Raise BreakerOpen once tripped: the call about to be made is not."""
        if self.reason:
            raise BreakerOpen("breaker", "BreakerOpen", f"not called: the run's breaker tripped ({self.reason})")

    def stop_line(self, done: str) -> str:
        """The one line a stopped run ends with; `done` says what was finished and saved."""
        figures = ", ".join(f"{name} {self.failures.get(name, 0)}/{self.calls[name]} failed" for name in self.calls
                            if self.failures.get(name))
        return (f"stopped: {self.reason} at the infrastructure (breaker: {self.limits.describe()}; {figures}); "
                f"{done}; fix or restart the backend, then run the same command again to resume")


_active: list[Breaker] = []  # the breaker of the run in progress in this process, if any


@contextlib.contextmanager
def watching(breaker: Breaker):
    """`breaker` watches every call made inside, from any thread, until the block ends."""
    _active.append(breaker)
    try:
        yield breaker
    finally:
        _active.remove(breaker)


def observe(backend: str, ok: bool) -> None:
    if _active:
        _active[-1].observe(backend, ok)


def check() -> None:
    if _active:
        _active[-1].check()


def tripped() -> bool:
    return bool(_active) and _active[-1].tripped


def raise_if_tripped(done: str) -> None:
    """BackendDown with the stop line, if the breaker watching this run has tripped."""
    if tripped():
        raise BackendDown(_active[-1].stop_line(done))
