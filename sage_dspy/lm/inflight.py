"""Two controls over LM calls that DSPy does not have: a bound on calls in flight, and stopping an attempt.

Both live in context variables, so they follow the work into worker threads that copy the context
(`contextvars.copy_context().run`), and `SageLM` checks them at every call:

- `call_slots(n)`: at most n calls of the run wait on a provider at once, however many seeds and attempts run
  in parallel (the bound a provider's rate limit needs).
- `stoppable(event)`: once `event` is set, the attempt's next call raises `AttemptStopped` instead of paying
  for a result that can no longer change the verdict.
- `in_lane(n)`: which of a role's connection lanes the work uses (see `sage_dspy.lm.roles.RoleLMs`).
"""

import contextlib
import threading
from contextvars import ContextVar

import dspy

from sage_dspy.lm.cache_key import key_cache_by_endpoint
from sage_dspy.lm.usage import count_call

_slots: ContextVar[threading.BoundedSemaphore | None] = ContextVar("sage_call_slots", default=None)
_stop: ContextVar[threading.Event | None] = ContextVar("sage_attempt_stop", default=None)
_lane: ContextVar[int] = ContextVar("sage_lane", default=0)


class AttemptStopped(Exception):
    """Raised at an attempt's next LM call once the attempt's result can no longer matter.

    Not a ValueError: dspy.ReAct ends a trajectory quietly on ValueError, and a stopped attempt must end at once."""


@contextlib.contextmanager
def call_slots(limit: int):
    token = _slots.set(threading.BoundedSemaphore(max(int(limit), 1)))
    try:
        yield
    finally:
        _slots.reset(token)


@contextlib.contextmanager
def stoppable(event: threading.Event):
    token = _stop.set(event)
    try:
        yield
    finally:
        _stop.reset(token)


@contextlib.contextmanager
def in_lane(lane: int):
    token = _lane.set(lane)
    try:
        yield
    finally:
        _lane.reset(token)


def current_lane() -> int:
    return _lane.get()


def _check_stop() -> None:
    stop = _stop.get()
    if stop is not None and stop.is_set():
        raise AttemptStopped("stopped: an earlier attempt already settled the verdict")


key_cache_by_endpoint()


class SageLM(dspy.LM):
    """dspy.LM that takes a slot before each call, honours a stop request and counts the calls it makes
    (`usage.count_call`); its cached responses are keyed by endpoint too (`cache_key`); otherwise exactly
    dspy.LM. A stopped call is never counted as made."""

    keys_cache_by_endpoint = True

    def __call__(self, *args, **kwargs):
        slots = _slots.get()
        with slots if slots is not None else contextlib.nullcontext():
            _check_stop()  # checked once a slot is free: the verdict may have settled while the call waited
            count_call(self.model)
            return super().__call__(*args, **kwargs)

    async def acall(self, *args, **kwargs):
        # The pipeline calls LMs from threads; async callers get the stop check, and no slot (a blocking
        # semaphore would stall their event loop).
        _check_stop()
        count_call(self.model)
        return await super().acall(*args, **kwargs)
