"""Controls over LM calls that DSPy does not have: a bound on calls in flight, stopping an attempt, and
retrying a malformed reply.

Both live in context variables, so they follow the work into worker threads that copy the context
(`contextvars.copy_context().run`), and `SageLM` checks them at every call:

- `call_slots(n)`: at most n calls of the run wait on a provider at once, however many seeds and attempts run
  in parallel (the bound a provider's rate limit needs).
- `stoppable(event)`: once `event` is set, the attempt's next call raises `AttemptStopped` instead of paying
  for a result that can no longer change the verdict.
- `in_lane(n)`: which of a role's connection lanes the work uses (see `sage_dspy.lm.roles.RoleLMs`).

A 2xx reply that is not a valid completion (a proxy's HTML page, a cut-off body) is an `LMProviderError` that
DSPy never retries, unlike a 5xx: one such reply would cost a whole seed. `SageLM` retries it `reply_retries`
times (the reply came back at once, so without a backoff), as DSPy retries a 5xx.
"""

import contextlib
import threading
from contextvars import ContextVar

import dspy
from dspy.utils.exceptions import (LMAuthError, LMBillingError, LMLockTimeoutError, LMProviderError, LMRateLimitError, LMServerError,
                                   LMTimeoutError, LMTransportError)

from sage_dspy.breaker import check as check_breaker, observe
from sage_dspy.lm.cache_key import key_cache_by_endpoint
from sage_dspy.lm.max_tokens_field import send_max_tokens_to_served_models
from sage_dspy.lm.usage import count_call, current_role, paid_responses

_slots: ContextVar[threading.BoundedSemaphore | None] = ContextVar("sage_call_slots", default=None)
_stop: ContextVar[threading.Event | None] = ContextVar("sage_attempt_stop", default=None)
_lane: ContextVar[int] = ContextVar("sage_lane", default=0)
REPLY_RETRIES = 2  # malformed 2xx replies retried per call (SageLM's `reply_retries`)
PARSE_RETRIES = 2  # fresh rollouts after a reply the adapter cannot parse (`parse_retries`, read by lm.adapter)


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


def is_malformed_reply(error: BaseException) -> bool:
    """A 2xx reply that is not a completion: DSPy's bare LMProviderError (its subclasses are the provider's
    refusals: auth, billing, bad request, rate limit...) with a success status."""
    return type(error) is LMProviderError and 200 <= (getattr(error, "status", None) or 0) < 300


# What the breaker counts as an LM failing at the infrastructure, after DSPy's retries: the service kinds of
# method.failures. A bad request or a context overflow (LMInvalidRequestError) is about the prompt, not the
# service; a reply the adapter cannot parse is the model's.
INFRASTRUCTURE_ERRORS = (LMRateLimitError, LMServerError, LMTimeoutError, LMTransportError, LMLockTimeoutError,
                         LMAuthError, LMBillingError)


def fails_at_infrastructure(error: BaseException) -> bool:
    return isinstance(error, INFRASTRUCTURE_ERRORS) or type(error) is LMProviderError


def _backend(model: str) -> str:
    return f"the {current_role()} LM {model!r}"


key_cache_by_endpoint()
send_max_tokens_to_served_models()


class SageLM(dspy.LM):
    """dspy.LM that takes a slot before each call, honours a stop request, counts the calls it makes
    (`usage.count_call`) and retries a malformed reply (`reply_retries`); its cached responses are keyed by
    endpoint too (`cache_key`); otherwise exactly dspy.LM. A stopped call is never counted as made.
    `parse_retries` is read by the adapter (lm.adapter.ChatAdapter)."""

    keys_cache_by_endpoint = True

    reply_retries, parse_retries = REPLY_RETRIES, PARSE_RETRIES  # also for an LM unpickled from before them

    def __init__(self, *args, reply_retries: int = REPLY_RETRIES, parse_retries: int = PARSE_RETRIES, **kwargs):
        super().__init__(*args, **kwargs)  # not in kwargs: they are ours, never sent to the provider
        self.reply_retries, self.parse_retries = int(reply_retries), int(parse_retries)

    def __call__(self, *args, **kwargs):
        slots = _slots.get()
        with slots if slots is not None else contextlib.nullcontext():
            _check_stop()  # checked once a slot is free: the verdict may have settled while the call waited
            check_breaker()
            count_call(self.model)
            paid_before = paid_responses()
            try:
                reply = self._call_retrying_malformed(*args, **kwargs)
            except Exception as error:
                if fails_at_infrastructure(error):
                    observe(_backend(self.model), ok=False)
                raise
            # A reply from DSPy's cache proves nothing about the server: on a resume against a dead one, the
            # replayed calls of the seeds it voided would otherwise keep the breaker from ever tripping.
            if paid_before is None or paid_responses() > paid_before:
                observe(_backend(self.model), ok=True)
            return reply

    def _call_retrying_malformed(self, *args, **kwargs):
        for retry in range(self.reply_retries + 1):
            try:
                return super().__call__(*args, **kwargs)
            except LMProviderError as error:
                if retry == self.reply_retries or not is_malformed_reply(error):
                    raise
                _check_stop()

    async def acall(self, *args, **kwargs):
        # The pipeline calls LMs from threads; async callers get the stop check, and no slot (a blocking
        # semaphore would stall their event loop).
        _check_stop()
        check_breaker()
        count_call(self.model)
        for retry in range(self.reply_retries + 1):
            try:
                return await super().acall(*args, **kwargs)
            except LMProviderError as error:
                if retry == self.reply_retries or not is_malformed_reply(error):
                    raise
