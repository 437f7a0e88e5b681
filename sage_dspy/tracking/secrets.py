"""Secrets never reach MLflow: params, tags, artifacts, prompts and warning text all pass `scrub_secrets`, which
is the package's one redaction (`sage_dspy.redact`: credential-like keys, endpoint userinfo, query tokens,
Authorization values, key-shaped values and the values of key-like environment variables)."""

from __future__ import annotations

from typing import Any

from sage_dspy.redact import REDACTED, redact

__all__ = ["REDACTED", "scrub_secrets"]


def scrub_secrets(obj: Any) -> Any:
    """What tracking may log of `obj` (see `sage_dspy.redact.redact`)."""
    return redact(obj)
