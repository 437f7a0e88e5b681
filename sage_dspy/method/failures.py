"""Failures as kinds: where an exception is caught it becomes a message and a kind (the DSPy exception class it
is), stored side by side, so nothing downstream parses a message to learn what happened.

A kind is the name of the most specific class of KNOWN_KINDS the exception is an instance of (a provider's own
subclass of LMServerError is still "LMServerError"), else its own class name. Service kinds are failures of the
LM service or the retriever rather than of the agent (after their own retries): an attempt that met one is void
(it says nothing about the pair), and a seed that met one is run again on resume.
"""


from dspy.utils.exceptions import (AdapterParseError, ContextWindowExceededError, LMAuthError, LMBillingError,
                                   LMConfigurationError, LMError, LMInvalidRequestError, LMLockTimeoutError,
                                   LMProviderError, LMRateLimitError, LMServerError, LMTimeoutError,
                                   LMTransportError, LMUnexpectedError)

from sage_dspy.lm.adapter import FAILED_REPLIES
from sage_dspy.lm.inflight import INFRASTRUCTURE_ERRORS
from sage_dspy.redact import error_text, redact_text

MESSAGE_LIMIT = 300  # characters of an error message kept in a record
RAW_REPLY_LIMIT = 2000  # characters of an unparseable reply kept in a record
# Most specific first: the first match names the kind.
KNOWN_KINDS = (ContextWindowExceededError, LMInvalidRequestError, LMAuthError, LMBillingError, LMRateLimitError,
               LMTimeoutError, LMServerError, LMProviderError, LMTransportError, LMLockTimeoutError,
               LMConfigurationError, LMUnexpectedError, LMError, AdapterParseError)
SERVICE_UNAVAILABLE = "ServiceUnavailable"  # method.loop.ServiceUnavailable: every attempt of a round met one
RETRIEVER_UNAVAILABLE = "RetrieverUnavailable"  # search.remote.RetrieverUnavailable: a void search
BREAKER_OPEN = "BreakerOpen"  # breaker.BreakerOpen: a call not made, the run's breaker having tripped
# The LM errors the breaker counts as the service failing (lm/inflight.py) are the ones a record calls void:
# one list, so the two never drift apart. LMProviderError is there by class, not as a base of the others.
SERVICE_KINDS = frozenset({*(error.__name__ for error in INFRASTRUCTURE_ERRORS), LMProviderError.__name__,
                           SERVICE_UNAVAILABLE, RETRIEVER_UNAVAILABLE, BREAKER_OPEN})
PARSE_KIND = AdapterParseError.__name__
JUDGE = "judge"  # `failed_in` of an attempt whose answer the judge could not rule on
SOLVER = "solver"


def error_kind(error: BaseException) -> str:
    return next((known.__name__ for known in KNOWN_KINDS if isinstance(error, known)), type(error).__name__)


def error_message(error: BaseException) -> str:
    """'Name: message', redacted then cut to MESSAGE_LIMIT: what a record and a log may show."""
    return error_text(error, MESSAGE_LIMIT)


def raw_reply(error: BaseException) -> str:
    """The model's reply an adapter could not parse (truncated, scrubbed), or "" for any other failure."""
    reply = getattr(error, "lm_response", None) if isinstance(error, AdapterParseError) else None
    return redact_text(str(reply))[:RAW_REPLY_LIMIT] if reply else ""


def raw_replies(error: BaseException) -> list[str]:
    """Every reply the adapter could not parse on the way to `error`, in order: each parse retry's and each
    JSON fallback's (lm.adapter.ParseRetries keeps the last FAILED_REPLIES_KEPT), truncated and scrubbed; the
    last one is `raw_reply`. [] for any other failure."""
    if not isinstance(error, AdapterParseError):
        return []
    replies = getattr(error, FAILED_REPLIES, None) or [getattr(error, "lm_response", None) or ""]
    return [redact_text(str(reply))[:RAW_REPLY_LIMIT] for reply in replies]


def is_service_kind(kind: str) -> bool:
    return kind in SERVICE_KINDS


def kind_of_entry(entry: dict) -> tuple[str, str]:
    """(error_kind, failed_in) of a seed record or an attempt dict: the stored fields, or for a record written
    before they existed (a resumed old folder: an error and no kind), what `legacy_kind_from_message` reads."""
    if entry.get("error_kind") or not entry.get("error"):
        return entry.get("error_kind", ""), entry.get("failed_in", "")
    return legacy_kind_from_message(entry.get("error") or "")


def legacy_kind_from_message(error: str) -> tuple[str, str]:
    """The one place that parses a message, for records from before `error_kind`: 'LMServerError: ...' ->
    ('LMServerError', ''), 'judge failed: X: ...' -> ('X', 'judge'). Nothing new is written that needs it."""
    if not error:
        return "", ""
    if error.startswith("judge failed"):
        return error.removeprefix("judge failed:").split(":", 1)[0].strip(), JUDGE
    return error.split(":", 1)[0].strip(), ""
