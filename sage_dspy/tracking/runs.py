"""One MLflow run: started and ended whatever the body does, logged through a client bound to its id, with
params flattened and every name and value made acceptable to MLflow (and scrubbed of secrets)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from sage_dspy.tracking.store import warn_failed
from sage_dspy.tracking.secrets import scrub_secrets


def clean_key(name: Any) -> str:
    """MLflow names allow alphanumerics and `_-. :/`, and no path tricks (`a//b`, `../x`)."""
    key = re.sub(r"[^\w./\- :]", "_", str(name))[:250]
    return "/".join("_" if part in (".", "..") else part for part in key.split("/") if part) or "_"


def _text(value: Any, limit: int) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rounded(number: float) -> float:
    """What a metric shows: 60.23 rather than 60.23076923076923; counts stay whole, small values (costs,
    fractions) keep 4 significant digits."""
    if number == int(number) or not math.isfinite(number):
        return number
    return round(number, 2) if abs(number) >= 1 else float(f"{number:.4g}")


def flatten_params(params: dict, prefix: str = "") -> dict[str, str]:
    """{"lm": {"model": "x"}} -> {"lm.model": "x"}; values as text, cut to MLflow's 6000 chars."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[clean_key(f"{prefix}{key}")] = _text(value, MAX_PARAM_VAL_LENGTH)
    return flat


class TrackedRun:
    """One MLflow run, logged through a client bound to `run_id` (so any thread may log).
    Every method is a no-op when the run failed to start (`run_id is None`) and never raises."""

    def __init__(self, run_id: str | None):
        self.run_id = run_id
        self._client = MlflowClient() if run_id else None

    @property
    def experiment_id(self) -> str | None:
        try:
            return self._client.get_run(self.run_id).info.experiment_id if self.run_id else None
        except Exception as exc:
            warn_failed("read the run's experiment", exc)
            return None

    def _call(self, action: str, method: str, *args: Any, **kwargs: Any) -> None:
        if self.run_id is not None:
            try:
                getattr(self._client, method)(self.run_id, *args, **kwargs)
            except Exception as exc:
                warn_failed(action, exc)

    def log_params(self, params: dict) -> None:
        flat = [Param(k, v) for k, v in flatten_params(scrub_secrets(params)).items()]
        for start in range(0, len(flat) if self.run_id else 0, 100):  # MLflow's batch limit
            try:
                self._client.log_batch(self.run_id, params=flat[start: start + 100])
            except Exception:  # one bad key (a changed value) must not drop the others
                for param in flat[start: start + 100]:
                    self._call(f"log param {param.key!r}", "log_param", param.key, param.value)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now, batch = int(time.time() * 1000), []
        for key, value in metrics.items():
            if value is None:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                warn_failed(f"log metric {key!r}", exc)
                continue
            if not math.isnan(number):  # a NaN (failed eval) would only break the UI's charts
                batch.append(Metric(clean_key(key), rounded(number), now, step or 0))
        if batch:
            self._call("log metrics", "log_batch", metrics=batch)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if self.run_id is not None and not path.exists():
            return warn_failed(f"log artifact {str(path)!r}: no such file")
        method = "log_artifacts" if path.is_dir() else "log_artifact"
        self._call(f"log artifact {str(path)!r}", method, str(path), artifact_path)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self._call(f"log {artifact_file!r}", "log_dict", scrub_secrets(obj), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call(f"log {artifact_file!r}", "log_text", scrub_secrets(text), artifact_file)

    def log_table(self, rows: list[dict], artifact_file: str) -> None:
        """Rows as an MLflow table (the UI's artifact view draws it; `mlflow.load_table` reads it back).
        MLflow appends to a table file that exists, so each file is logged once per run."""
        if rows:
            columns = {key: [scrub_secrets(row.get(key)) for row in rows] for key in dict.fromkeys(
                key for row in rows for key in row)}
            self._call(f"log table {artifact_file!r}", "log_table", data=columns, artifact_file=artifact_file)

    def log_dataset(self, dataset: Any, context: str, tags: dict | None = None) -> None:
        """A dataset entity (`mlflow.data` dataset's `_to_mlflow_entity()`) as an input of the run (the runs
        list's Datasets column), under `context`."""
        if self.run_id is None:
            return
        try:
            from mlflow.entities import DatasetInput, InputTag
            from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

            labels = [InputTag(k, str(v)) for k, v in {**(tags or {}), MLFLOW_DATASET_CONTEXT: context}.items()]
            self._client.log_inputs(self.run_id, [DatasetInput(dataset, labels)])
        except Exception as exc:
            warn_failed(f"log the {context} dataset", exc)

    def set_tags(self, tags: dict) -> None:
        tags = [RunTag(clean_key(k), _text(v, MAX_TAG_VAL_LENGTH)) for k, v in scrub_secrets(tags).items()]
        if tags:
            self._call("set tags", "log_batch", tags=tags)


@contextlib.contextmanager
def tracked_run(name: str, *, params: dict | None = None, tags: dict | None = None,
                nested: bool = False, started: float | None = None) -> Iterator[TrackedRun]:
    """An MLflow run that ends FINISHED, FAILED (the body raised; it propagates) or KILLED (Ctrl-C).
    Inside another active run it nests even without nested=True, rather than failing to start. `started`
    (time.time()) dates its start back, so its duration covers work done before it was opened."""
    try:
        nest = nested or mlflow.active_run() is not None
        if started is None:
            run_id = mlflow.start_run(run_name=name, nested=nest).info.run_id
        else:
            from mlflow.tracking.context import registry
            from mlflow.tracking.fluent import _get_experiment_id
            from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

            # start_run(run_id=...) resumes a run without resolving the tags it gives a new one (user, source,
            # git commit, parent): the back-dated run gets them here, as start_run would have given them
            parent = mlflow.active_run()
            context = registry.resolve_tags({MLFLOW_PARENT_RUN_ID: parent.info.run_id} if nest and parent else {})
            created = MlflowClient().create_run(_get_experiment_id(), start_time=int(started * 1000), run_name=name,
                                                tags=context)
            run_id = mlflow.start_run(run_id=created.info.run_id, nested=nest).info.run_id
    except Exception as exc:
        warn_failed(f"start run {name!r}", exc)
        run_id = None
    run = TrackedRun(run_id)
    run.log_params(params or {})
    run.set_tags(tags or {})
    status = "FINISHED"
    try:
        yield run
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        raise
    finally:
        _end_run(run_id, status)


def _end_run(run_id: str | None, status: str) -> None:
    try:
        active = mlflow.active_run()
        if run_id and active and active.info.run_id == run_id:
            mlflow.end_run(status)
        elif run_id:  # the body left another run open: end ours without popping theirs
            MlflowClient().set_terminated(run_id, status)
    except Exception as exc:
        warn_failed(f"end run {run_id}", exc)
