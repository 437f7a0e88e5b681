"""LM calls and tokens spent on one seed, per role: calls counted by our LM class, tokens by DSPy's usage tracker.

Calls are counted where `SageLM` makes them (`count_call`), not by a DSPy callback: with any callback
registered, DSPy inspects the arguments of every module, adapter and tool call, which cost 0.6-1.3 ms per LM
call in the client-overhead benchmark.

The role making a call is a context variable set by `RoleLMs.use(role)` (`acting_as`). Context variables follow
the code that runs: a worker thread started with `contextvars.copy_context().run` inherits the role of the
block that started it, so attempts on their own threads are still charged to the solver.
"""

import contextvars
import threading
from collections.abc import Callable
from contextlib import contextmanager

import dspy
from dspy.utils.usage_tracker import UsageTracker

OTHER = "other"  # calls made outside any role (none in `generate`; an optimizer's own calls elsewhere)
_role = contextvars.ContextVar("sage_role", default=OTHER)


@contextmanager
def acting_as(role: str):
    """Charge the LM calls made inside the block to `role`."""
    token = _role.set(role)
    try:
        yield
    finally:
        _role.reset(token)


def current_role() -> str:
    return _role.get()


class LMCallCounter:
    """Counts LM calls per (role, model); thread-safe so attempts on several threads can share it."""

    def __init__(self):
        self.calls: dict[tuple[str, str], int] = {}
        self.parse_failures: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def count(self, model: str, counts: dict | None = None) -> None:
        counts = self.calls if counts is None else counts
        key = (current_role(), model)
        with self._lock:
            counts[key] = counts.get(key, 0) + 1


_counter: contextvars.ContextVar[LMCallCounter | None] = contextvars.ContextVar("sage_call_counter", default=None)


def count_call(model: str) -> None:
    """One LM call by `model` (cache hits included), charged to the current role and counting block."""
    counter = _counter.get()
    if counter is not None:
        counter.count(model)


def count_parse_failure(model: str) -> None:
    """One reply by `model` the adapter could not parse (retried or not), charged like a call."""
    counter = _counter.get()
    if counter is not None:
        counter.count(model, counter.parse_failures)


# Told of every paid response as it returns, (role, model, prompt tokens, completion tokens): the run's spend
# ledger (runs/ledger.py) writes it to disk there, so a kill loses nothing paid for.
SpendSink = Callable[[str, str, int, int], None]
_spend_sink: contextvars.ContextVar[SpendSink | None] = contextvars.ContextVar("sage_spend_sink", default=None)


@contextmanager
def reporting_spend(sink: SpendSink | None):
    """Tell `sink` of every paid response of the LM calls made inside the block (cache hits are not paid)."""
    token = _spend_sink.set(sink)
    try:
        yield
    finally:
        _spend_sink.reset(token)


class RoleUsageTracker(UsageTracker):
    """DSPy's usage tracker, keyed by (role, model) instead of model, and thread-safe. DSPy records every
    response it did not serve from its cache (failed calls' usage too) through `add_usage`, so this is where
    a paid response is known: it is passed on to the spend sink of the block, if any."""

    def __init__(self):
        super().__init__()
        self.tokens: dict[tuple[str, str], list[int]] = {}
        self.paid_responses = 0  # what came from a server, not from DSPy's cache (the breaker's sign of health)
        self._lock = threading.Lock()

    def add_usage(self, lm: str, usage_entry: dict) -> None:
        usage = dict(usage_entry or {})
        key = (current_role(), lm)
        with self._lock:
            spent = self.tokens.setdefault(key, [0, 0])
            prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            spent[0] += prompt
            spent[1] += completion
            self.paid_responses += 1
        sink = _spend_sink.get()
        if sink is not None:
            sink(key[0], lm, prompt, completion)

    def __deepcopy__(self, memo):
        return self  # dspy.Parallel deep-copies the tracker per thread; sharing this one loses nothing


def usage_rows(calls: dict[tuple[str, str], int], tokens: dict[tuple[str, str], list[int]],
               parse_failures: dict[tuple[str, str], int] | None = None) -> list[dict]:
    """One row per (role, model) that made a call, sorted: a fixed schema, so records load alike as a dataset."""
    rows, parse_failures = [], parse_failures or {}
    for role, model in sorted(set(calls) | set(tokens) | set(parse_failures)):
        prompt, completion = tokens.get((role, model), (0, 0))
        rows.append({"role": role, "model": model, "lm_calls": calls.get((role, model), 0),
                     "prompt_tokens": prompt, "completion_tokens": completion,
                     "parse_failures": parse_failures.get((role, model), 0)})
    return rows


@contextmanager
def counting_usage():
    """Yields a dict that, after the block, holds `lm_calls`, `prompt_tokens` and `completion_tokens` for
    everything run inside, and `lm_usage`: the same per role and model (see `usage_rows`)."""
    counter, tracker = LMCallCounter(), RoleUsageTracker()
    spent = {"lm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "lm_usage": []}
    token = _counter.set(counter)
    try:
        with dspy.context(usage_tracker=tracker):
            yield spent
    finally:
        _counter.reset(token)
        rows = usage_rows(dict(counter.calls), dict(tracker.tokens), dict(counter.parse_failures))
        spent.update(lm_calls=sum(r["lm_calls"] for r in rows), lm_usage=rows,
                     prompt_tokens=sum(r["prompt_tokens"] for r in rows),
                     completion_tokens=sum(r["completion_tokens"] for r in rows))


def paid_responses() -> int | None:
    """How many responses the active RoleUsageTracker has seen come from a server, or None without one."""
    tracker = dspy.settings.usage_tracker
    return tracker.paid_responses if isinstance(tracker, RoleUsageTracker) else None
