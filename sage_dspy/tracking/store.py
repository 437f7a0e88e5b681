"""MLflow tracking: set up the store, log runs, version prompts, log compiled programs.

Like MLflow's DSPy flavor, these helpers never raise into the caller: a failed log is one
`TrackingWarning` line and the run goes on. Two exceptions raise `TrackingError`: `configure_tracking`
when MLFLOW_TRACKING_URI names an http(s) server that does not answer (the user asked for it; the CLI
exits 2), and `load_program`, which has nothing to return. Measurements behind this: STACK.md §5.
"""

from __future__ import annotations

import contextlib
import json
import math
import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from sage_dspy.errors import SageError

REDACTED = "<redacted>"
_SECRET_WORDS = {"apikey", "token", "secret", "password", "passwd", "authorization", "auth",
                 "credential", "credentials", "cookie"}
_SECRET_PAIRS = {"api key", "access key", "secret key", "private key"}
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")
_our_uri: str | None = None  # set_tracking_uri exports MLFLOW_TRACKING_URI; tell ours from the user's


class TrackingError(SageError):
    """Tracking cannot do what the user explicitly asked for; the message names the fix."""


class TrackingWarning(UserWarning):
    """A log failed; the run went on."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return scrub_secrets(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _warn(action: str, exc: BaseException | None = None) -> None:
    detail = f": {_one_line(exc)}" if exc is not None else ""
    warnings.warn(f"sage-dspy tracking: could not {action}{detail}", TrackingWarning, stacklevel=3)


# --- secrets

def _is_secret_key(key: Any) -> bool:
    """By words, so `openai_api_key`, `apiKey`, `auth_token` hide but `max_tokens`, `token_count` show."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", str(key)).lower())
    return bool(words) and (words[-1] in _SECRET_WORDS or " ".join(words[-2:]) in _SECRET_PAIRS)


def _env_secrets() -> list[str]:
    found = {value for name, value in os.environ.items()
             if name.upper().endswith(_SECRET_ENV_SUFFIXES) and len(value) >= 8}
    return sorted(found, key=len, reverse=True)  # longest first, so overlapping values vanish whole


def scrub_secrets(obj: Any) -> Any:
    """A copy of nested dicts/lists/tuples/strings with credential-like dict keys set to "<redacted>"
    and each value of a *_API_KEY/*_TOKEN/*_SECRET env variable (>= 8 chars) redacted inside strings.
    None/empty values under secret keys stay (nothing to hide); other objects are returned as is."""
    return _scrub(obj, _env_secrets())


def _scrub(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, str):
        for secret in secrets:
            obj = obj.replace(secret, REDACTED)
        return obj
    if isinstance(obj, dict):
        return {k: REDACTED if _is_secret_key(k) and v not in (None, "") else _scrub(v, secrets)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_scrub(value, secrets) for value in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    return obj


# --- store

def configure_tracking(root: Path = Path("artifacts"), experiment: str = "sage-dspy") -> str:
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
        _warn(f"set up experiment {experiment!r} at {uri}", exc)
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
    except Exception as exc:
        _warn("configure mlflow.dspy.autolog", exc)


# --- runs

def _clean_key(name: Any) -> str:
    """MLflow names allow alphanumerics and `_-. :/`, and no path tricks (`a//b`, `../x`)."""
    key = re.sub(r"[^\w./\- :]", "_", str(name))[:250]
    return "/".join("_" if part in (".", "..") else part for part in key.split("/") if part) or "_"


def _text(value: Any, limit: int) -> str:
    text = json.dumps(value, default=str) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flatten_params(params: dict, prefix: str = "") -> dict[str, str]:
    """{"lm": {"model": "x"}} -> {"lm.model": "x"}; values as text, cut to MLflow's 6000 chars."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[_clean_key(f"{prefix}{key}")] = _text(value, MAX_PARAM_VAL_LENGTH)
    return flat


class TrackedRun:
    """One MLflow run, logged through a client bound to `run_id` (so any thread may log).
    Every method is a no-op when the run failed to start (`run_id is None`) and never raises."""

    def __init__(self, run_id: str | None):
        self.run_id = run_id
        self._client = MlflowClient() if run_id else None

    def _call(self, action: str, method: str, *args: Any, **kwargs: Any) -> None:
        if self.run_id is not None:
            try:
                getattr(self._client, method)(self.run_id, *args, **kwargs)
            except Exception as exc:
                _warn(action, exc)

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
                _warn(f"log metric {key!r}", exc)
                continue
            if not math.isnan(number):  # a NaN (failed eval) would only break the UI's charts
                batch.append(Metric(_clean_key(key), number, now, step or 0))
        if batch:
            self._call("log metrics", "log_batch", metrics=batch)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if self.run_id is not None and not path.exists():
            return _warn(f"log artifact {str(path)!r}: no such file")
        method = "log_artifacts" if path.is_dir() else "log_artifact"
        self._call(f"log artifact {str(path)!r}", method, str(path), artifact_path)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self._call(f"log {artifact_file!r}", "log_dict", scrub_secrets(obj), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call(f"log {artifact_file!r}", "log_text", scrub_secrets(text), artifact_file)

    def set_tags(self, tags: dict) -> None:
        tags = [RunTag(_clean_key(k), _text(v, MAX_TAG_VAL_LENGTH)) for k, v in scrub_secrets(tags).items()]
        if tags:
            self._call("set tags", "log_batch", tags=tags)


@contextlib.contextmanager
def tracked_run(name: str, *, params: dict | None = None, tags: dict | None = None,
                nested: bool = False) -> Iterator[TrackedRun]:
    """An MLflow run that ends FINISHED, FAILED (the body raised; it propagates) or KILLED (Ctrl-C).
    Inside another active run it nests even without nested=True, rather than failing to start."""
    try:
        run_id = mlflow.start_run(run_name=name, nested=nested or mlflow.active_run() is not None).info.run_id
    except Exception as exc:
        _warn(f"start run {name!r}", exc)
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
        _warn(f"end run {run_id}", exc)


# --- prompts

def prompt_name(prefix: str, predictor_name: str) -> str:
    """Registry names allow [A-Za-z0-9_.-] only: "generator.propose" -> "sage.generator.propose",
    "steps[0].predict" -> "sage.steps.0.predict", "tools['a b']" -> "sage.tools.a_b"."""
    raw = re.sub(r"['\"\]]", "", f"{prefix}.{predictor_name}".replace("[", "."))
    return re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]", "_", raw))


def render_prompt(predictor: Any) -> str:
    """The signature's instructions, then each demo as `field: value` lines in signature order."""
    signature, demos = predictor.signature, predictor.demos
    fields = [*signature.input_fields, *signature.output_fields]
    lines = [signature.instructions.strip(), *(["", f"## Demos ({len(demos)})"] if demos else [])]
    for number, demo in enumerate(demos, 1):
        data = dict(demo.items())  # dspy.Example.items() hides internal dspy_* keys
        keys = [f for f in fields if f in data] + [k for k in data if k not in fields and k != "augmented"]
        lines += ["", f"### Demo {number}", *(f"{key}: {data[key]}" for key in keys)]
    return scrub_secrets("\n".join(lines))


def register_prompts(program: Any, *, prefix: str = "sage", run_id: str | None = None,
                     metrics: dict | None = None) -> dict[str, int]:
    """One new registry version per named predictor, under `prompt_name(prefix, predictor_name)`,
    tagged with run_id and metrics. Returns {name: version}; failures warn and are left out."""
    import mlflow.genai

    tags = {_clean_key(k): str(v) for k, v in {"run_id": run_id, **(metrics or {})}.items() if v is not None}
    versions: dict[str, int] = {}
    for predictor_name, predictor in program.named_predictors():
        name = prompt_name(prefix, predictor_name)
        message = f"sage-dspy: {len(predictor.demos)} demos" + (f", run {run_id}" if run_id else "")
        try:
            version = mlflow.genai.register_prompt(name=name, template=render_prompt(predictor),
                                                   commit_message=message, tags=tags)
            versions[name] = int(version.version)
        except Exception as exc:
            _warn(f"register prompt {name!r}", exc)
    return versions


# --- programs

def _blank_settings() -> dict[str, Any]:
    """mlflow.dspy pickles dspy.settings whole, LM and api_key included (STACK.md 5.2): blank every
    setting that is not a plain value (lm, adapter, rm, callbacks, usage tracker, ...)."""
    import dspy

    plain = (type(None), bool, int, float, str)
    return {key: [] if isinstance(value, list) else None
            for key, value in dspy.settings.config.items() if not isinstance(value, plain)}


def _lm_slots(program: Any) -> list[tuple[Any, str]]:
    """(module, attribute) of every LM a (sub)module holds: `predictor.lm`, or e.g. `self.judge_lm`."""
    import dspy

    return [(module, attr) for _, module in program.named_sub_modules()
            for attr, value in vars(module).items() if isinstance(value, dspy.BaseLM)]


def _known_secrets(program: Any) -> list[bytes]:
    import dspy

    lms = [dspy.settings.lm, *(getattr(module, attr) for module, attr in _lm_slots(program))]
    keys = {value for lm in lms if lm is not None for key, value in getattr(lm, "kwargs", {}).items()
            if _is_secret_key(key) and isinstance(value, str) and len(value) >= 8}
    return [secret.encode() for secret in keys.union(_env_secrets())]


def _without_lms(program: Any) -> Any:
    copy = program.deepcopy()
    originals = {id(module) for _, module in program.named_sub_modules()}
    if any(id(module) in originals for _, module in copy.named_sub_modules()):
        raise TrackingError("the program's modules could not be copied")  # never edit the caller's
    for module, attr in _lm_slots(copy):
        setattr(module, attr, None)
    return copy


class _ScannedDspyFlavor:
    """mlflow.dspy's save_model, then a byte scan of every file written. Model.log calls it before
    uploading anything, so a leak aborts the log (the LoggedModel ends FAILED, with no files)."""

    def __init__(self, secrets: list[bytes]):
        self.__name__ = "mlflow.dspy"  # Model.log records the flavor under this name
        self.secrets = secrets

    def save_model(self, path: str, **kwargs: Any) -> None:
        import mlflow.dspy

        mlflow.dspy.save_model(path=path, **kwargs)
        leaked = []
        for file in Path(path).rglob("*"):
            data = file.read_bytes() if file.is_file() else b""
            if any(secret in data for secret in self.secrets):
                leaked.append(str(file.relative_to(path)))
        if leaked:
            raise TrackingError(f"a secret was found in {leaked}; refusing to log the program")


def log_program(program: Any, *, name: str = "program") -> str | None:
    """Log `program` as an MLflow dspy model and return its URI (`models:/m-...`), or None.

    Keys stay out three ways: a copy of the program is logged with the LMs its modules hold removed
    (set LMs again after loading), dspy.settings are blanked while saving, and every written file is
    scanned for each known key (LM api keys, *_API_KEY/_TOKEN/_SECRET env values) before upload."""
    import cloudpickle
    import dspy
    from mlflow.models import Model

    try:
        secrets, copy = _known_secrets(program), _without_lms(program)
        # explicit requirements skip MLflow's requirement inference, a slow subprocess
        requirements = [f"dspy=={dspy.__version__}", f"cloudpickle=={cloudpickle.__version__}"]
        with dspy.context(**_blank_settings()):
            info = Model.log(artifact_path=None, name=name, flavor=_ScannedDspyFlavor(secrets), model=copy,
                             use_dspy_model_save=True, pip_requirements=requirements)
        return info.model_uri
    except Exception as exc:
        _warn(f"log program {name!r}", exc)
        return None


def load_program(uri: str) -> Any:
    """The program behind a `models:/...` or `runs:/<id>/<name>` URI from `log_program`. Unlike
    mlflow.dspy.load_model it leaves dspy.settings alone (that one would configure the blanked
    settings globally, LM None). It unpickles (cloudpickle): load only from stores you trust."""
    import dspy
    import mlflow.artifacts
    from mlflow.models import Model

    try:
        with tempfile.TemporaryDirectory() as tmp:  # dspy.load reads it all; leave no copy behind
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            return dspy.load(str(local / Model.load(local).flavors["dspy"]["model_path"]), allow_pickle=True)
    except Exception as exc:
        raise TrackingError(f"could not load a program from {uri}: {_one_line(exc)}") from exc
