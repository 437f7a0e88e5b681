"""Secrets never reach MLflow: credential-like keys and the values of key-like environment variables are
redacted from everything tracking logs (params, tags, artifacts, prompts, warning text)."""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "<redacted>"
_SECRET_WORDS = {"apikey", "token", "secret", "password", "passwd", "authorization", "auth",
                 "credential", "credentials", "cookie"}
_SECRET_PAIRS = {"api key", "access key", "secret key", "private key"}
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")


def is_secret_key(key: Any) -> bool:
    """By words, so `openai_api_key`, `apiKey`, `auth_token` hide but `max_tokens`, `token_count` show."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", str(key)).lower())
    return bool(words) and (words[-1] in _SECRET_WORDS or " ".join(words[-2:]) in _SECRET_PAIRS)


def env_secrets() -> list[str]:
    found = {value for name, value in os.environ.items()
             if name.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value) >= 8}
    return sorted(found, key=len, reverse=True)  # longest first, so overlapping values vanish whole


def scrub_secrets(obj: Any) -> Any:
    """A copy of nested dicts/lists/tuples/strings with credential-like dict keys set to "<redacted>"
    and each value of a *_API_KEY/*_TOKEN/*_SECRET env variable (>= 8 chars) redacted inside strings.
    None/empty values under secret keys stay (nothing to hide); other objects are returned as is."""
    return _scrub(obj, env_secrets())


def _scrub(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, str):
        for secret in secrets:
            obj = obj.replace(secret, REDACTED)
        return obj
    if isinstance(obj, dict):
        return {k: REDACTED if is_secret_key(k) and v not in (None, "") else _scrub(v, secrets)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_scrub(value, secrets) for value in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    return obj
