"""Programs as MLflow dspy models: logged with no LM and no key inside (checked byte by byte before upload),
and loaded back without touching dspy.settings."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sage_dspy.tracking.store import TrackingError, one_line, warn_failed
from sage_dspy.redact import env_secrets, is_secret_key


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
            if is_secret_key(key) and isinstance(value, str) and len(value) >= 8}
    return [secret.encode() for secret in keys.union(env_secrets())]


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
        warn_failed(f"log program {name!r}", exc)
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
        raise TrackingError(f"could not load a program from {uri}: {one_line(exc)}") from exc
