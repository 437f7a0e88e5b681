"""Undoing what the tracked CLI and configure_tracking set globally: MLflow's tracking URI and experiment, the
exported MLFLOW_* variables and tracking's note of its own URI."""

import mlflow

from sage_dspy.tracking import store as tracking


def reset_mlflow_globals(mp) -> None:
    """Register every MLflow global with the monkeypatch `mp`, so undoing it restores them."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        mp.setenv(name, "")  # records the original (maybe unset) value, so undo restores it
        mp.delenv(name)
    mp.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    mp.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    mp.setattr(tracking, "_our_uri", None)
