"""The MLflow store: the embedded sqlite store under artifacts/ or the user's MLFLOW_TRACKING_URI (a server
must answer /health), the experiment, and DSPy autolog; and how every tracking helper fails.

Like MLflow's DSPy flavor, these helpers never raise into the caller: a failed log is one
`TrackingWarning` line and the run goes on. Two exceptions raise `TrackingError`: `configure_tracking`
when MLFLOW_TRACKING_URI names an http(s) server that does not answer (the user asked for it; the CLI
exits 2), and `load_program` (programs.py), which has nothing to return. Measurements behind this: STACK.md §5.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from sage_dspy.environment import ARTIFACTS
from sage_dspy.errors import SageError
from sage_dspy.tracking.secrets import scrub_secrets

_our_uri: str | None = None  # set_tracking_uri exports MLFLOW_TRACKING_URI; tell ours from the user's


class TrackingError(SageError):
    """Tracking cannot do what the user explicitly asked for; the message names the fix."""


class TrackingWarning(UserWarning):
    """A log failed; the run went on."""


def one_line(exc: BaseException) -> str:
    text = " ".join(scrub_secrets(str(exc)).split())[:300]  # scrubbed before the cut, which could halve a secret
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def warn_failed(action: str, exc: BaseException | None = None) -> None:
    detail = f": {one_line(exc)}" if exc is not None else ""
    # stacklevel 3: past this function and the helper that failed, at the line that called the helper
    warnings.warn(scrub_secrets(f"sage-dspy tracking: could not {action}{detail}"), TrackingWarning, stacklevel=3)


def configure_tracking(root: Path = ARTIFACTS, experiment: str = "sage-dspy") -> str:
    """Use `sqlite:///<root>/mlflow.db` with artifacts in `<root>/mlflow-artifacts`, or the user's
    MLFLOW_TRACKING_URI when set; select `experiment`, creating it if needed. Idempotent."""
    global _our_uri
    root, user_uri = Path(root).resolve(), os.environ.get("MLFLOW_TRACKING_URI")
    embedded = not user_uri or user_uri == _our_uri
    uri = f"sqlite:///{root / 'mlflow.db'}" if embedded else user_uri
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    # A server picks its own artifact root; anything local would default to ./mlruns (STACK.md 5.1).
    remote = uri.split(":", 1)[0] in {"http", "https", "databricks"}
    # Creating or migrating the sqlite store logs several INFO lines; a CLI run should print its own output.
    for noisy in ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if not remote:
            root.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        _our_uri = uri if embedded else _our_uri
        if MlflowClient().get_experiment_by_name(experiment) is None:
            artifacts = None if remote else (root / "mlflow-artifacts").as_uri()
            MlflowClient().create_experiment(experiment, artifact_location=artifacts)
        mlflow.set_experiment(experiment)
    except Exception as exc:
        warn_failed(f"set up experiment {experiment!r} at {uri}", exc)
    return uri


def _check_server(uri: str) -> None:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=3):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # it answers, behind authentication
            return
        reason = f"HTTP {exc.code}"
    except Exception as exc:  # refused, timed out, unresolvable, malformed, not HTTP at all
        reason = " ".join(str(getattr(exc, "reason", exc)).split())
    raise TrackingError(f"MLflow server at MLFLOW_TRACKING_URI={uri} does not answer /health ({reason}); "
                        "start it, or unset MLFLOW_TRACKING_URI to use the embedded sqlite store")


def autolog_dspy(enabled: bool = True) -> None:
    """Trace each top-level DSPy call into the active run. Call it BEFORE entering any dspy.context:
    inside one, dspy.settings.callbacks is a snapshot and no traces appear (STACK.md 5.2)."""
    try:
        import mlflow.dspy

        mlflow.dspy.autolog(log_traces=True, log_traces_from_compile=False, log_traces_from_eval=False,
                            silent=True, disable=not enabled)
        import dspy

        from sage_dspy.tracking.trace_usage import with_usage_callback

        dspy.configure(callbacks=with_usage_callback(list(dspy.settings.get("callbacks") or []), enabled))
    except Exception as exc:
        warn_failed("configure mlflow.dspy.autolog", exc)
