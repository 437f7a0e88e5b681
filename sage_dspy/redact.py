"""Credentials never reach a file, a log line or MLflow: every error text and everything written goes through here.

What is hidden: an endpoint's userinfo (`http://user:pass@host`), secret query parameters (`?api_key=`, `?token=`,
`?key=`), Authorization values (`Bearer ...`, `Basic ...`), `api_key=...`-like pairs in text, values shaped like
provider keys (`sk-...`, `hf_...`), the value of every *_API_KEY/*_TOKEN/*_SECRET environment variable (the
configured keys), and the values under credential-like keys of dicts. Hiding happens before text is cut to a
length, so a cut never leaves half a secret behind.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

REDACTED = "<redacted>"
_SECRET_WORDS = {"apikey", "token", "secret", "password", "passwd", "authorization", "auth",
                 "credential", "credentials", "cookie"}
_SECRET_PAIRS = {"api key", "access key", "secret key", "private key"}
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")
_SECRET_QUERY_NAMES = {"key", "sig", "signature", "code"}  # secret as query parameters, not as dict keys

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#]*@")
# lm15 names the host it failed to reach without the scheme: "failed to connect to alice:secret@127.0.0.1:80"
_BARE_USERINFO = re.compile(r"(?<![\w/@:.-])[^\s/@:'\"()\[\]]+:[^\s/@'\"()\[\]]+@(?=[\w\[])")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[A-Za-z0-9_.-]+)=(?P<value>[^&\s#'\"]+)")
_AUTH_VALUE = re.compile(r"(?P<lead>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE)
_NAMED_VALUE = re.compile(r"(?P<lead>\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|passwd)"
                          r"[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\s\"',;}&]{4,})", re.IGNORECASE)
_KEY_SHAPED = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{8,}|sk_[A-Za-z0-9]{16,}|hf_[A-Za-z0-9]{16,}|gsk_[A-Za-z0-9]{16,}|"
                         r"gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|"
                         r"AIza[0-9A-Za-z_-]{20,}|AKIA[0-9A-Z]{16}|glpat-[A-Za-z0-9_-]{16,}|r8_[A-Za-z0-9]{16,})")


@functools.lru_cache(maxsize=4096)  # a record repeats a few dozen keys thousands of times
def is_secret_key(key: Any) -> bool:
    """By words, so `openai_api_key`, `apiKey`, `auth_token` hide but `max_tokens`, `token_count` show."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", str(key)).lower())
    return bool(words) and (words[-1] in _SECRET_WORDS or " ".join(words[-2:]) in _SECRET_PAIRS)


def env_secrets() -> list[str]:
    found = {value for name, value in os.environ.items()
             if name.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value) >= 8}
    return sorted(found, key=len, reverse=True)  # longest first, so overlapping values vanish whole


# Text none of the patterns below can match (no "@", no "=", none of their words or key prefixes) is returned
# at once: a run's records are mostly such text. Plain substring tests on the lower-cased text: a regex
# alternation here cost about 60 us a string, 11 ms a record.
_TRIGGERS = ("@", "=", "bearer", "basic", "token", "secret", "passw", "api_key", "api-key", "apikey", "access_key",
             "access-key", "accesskey", "auth_token", "auth-token", "sk-", "sk_", "hf_", "gsk_", "ghp_", "gho_",
             "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "aiza", "akia", "glpat-", "r8_")


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every credential above replaced by "<redacted>"."""
    for secret in env_secrets() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    text = _BARE_USERINFO.sub(f"{REDACTED}@", text)
    text = _QUERY_PARAM.sub(lambda m: f"{m['lead']}{m['name']}={REDACTED}" if _secret_param(m["name"]) else m[0],
                            text)
    text = _AUTH_VALUE.sub(lambda m: m["lead"] + REDACTED, text)
    text = _NAMED_VALUE.sub(lambda m: m[0] if m["value"] == REDACTED else m["lead"] + REDACTED, text)
    return _KEY_SHAPED.sub(REDACTED, text)


def _secret_param(name: str) -> bool:
    return name.lower() in _SECRET_QUERY_NAMES or is_secret_key(name) or name.lower().endswith("key")


def redact(obj: Any) -> Any:
    """A copy of nested dicts/lists/tuples/strings with credential-like dict keys set to "<redacted>" and every
    string passed through `redact_text`. None/empty values under secret keys stay (nothing to hide); other
    objects are returned as is."""
    return _redact(obj, env_secrets())


def _redact(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    if isinstance(obj, dict):
        return {k: REDACTED if is_secret_key(k) and v not in (None, "") else _redact(v, secrets)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_redact(value, secrets) for value in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    return obj


def error_text(error: BaseException, limit: int | None = None, *, first_line: bool = False) -> str:
    """'ErrorType: message' fit to keep: redacted first, then (optionally) its first line only, then cut."""
    message = redact_text(str(error))
    if first_line:
        message = (message.splitlines() or [""])[0]
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text[:limit] if limit else text
