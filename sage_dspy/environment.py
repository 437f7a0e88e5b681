"""Offline-safe process defaults, applied on import unless the user set them.

Without these, litellm and DSPy fetch a cost map from GitHub (5 s timeouts, and `mlflow ui`
deadlocks), MLflow phones home for telemetry, and `datasets` HEADs S3 on every load.
See shared notes STACK.md §0 for the measurements behind each one.
"""

import os
from pathlib import Path

# Every default output (runs, indexes, programs, the MLflow store, caches) lives under this folder, relative to
# the working directory; options such as --out and --index-root point elsewhere.
ARTIFACTS = Path("artifacts")

OFFLINE_DEFAULTS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def apply_offline_defaults(workdir: Path | None = None) -> None:
    """Set each default only where the user has not chosen a value."""
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)
    root = Path(workdir or Path.cwd())
    os.environ.setdefault("DSPY_CACHEDIR", str(root / ARTIFACTS / "dspy_cache"))
    os.environ.setdefault("HF_HOME", str(root / ARTIFACTS / "hf_home"))
