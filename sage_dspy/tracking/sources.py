"""Where a compiled program can come from, resolved to one local folder holding `program.json`.

- a folder written by `sage compile` (artifacts/programs/<recipe>-<optimizer>-<stamp>/)
- `runs:/<run id>/program`: that folder as logged with the compile run
- `models:/<model id>`: the compiled program logged as an MLflow dspy model
- `prompts:/<name>/<version>` or `prompts:/<name>@<alias>`: a registered prompt version; the program is the one
  compiled by the run that registered it (its `run_id` tag)

What comes from MLflow is kept under artifacts/programs/from-mlflow/ (one folder per run or model, reused when
asked again), never in the system temp folder; every folder names its compile run in mlflow.json, as the one
`sage compile` writes does, so a run that uses it can link to that compile and its prompt versions.
"""

import json
import re
from pathlib import Path

from sage_dspy.environment import ARTIFACTS
from sage_dspy.errors import SageError
from sage_dspy.runs.folder import TRACKING_FILE
from sage_dspy.tracking.programs import load_program
from sage_dspy.tracking.store import TrackingError
from sage_dspy.runs.program import PROGRAM_FILE

FETCHED = Path("programs") / "from-mlflow"  # under the artifacts folder


class ProgramSourceError(SageError, LookupError):
    """One line: which source could not be used, and what to pass instead."""


def resolve_program(source: str, artifacts: Path = ARTIFACTS) -> Path:
    if source.startswith("prompts:/"):
        return resolve_program(f"runs:/{_run_of_prompt(source)}/program", artifacts)
    if source.startswith("models:/"):
        folder = _from_model(source, artifacts / FETCHED)
    elif ":/" in source:
        folder = _download(source, artifacts / FETCHED)
    else:
        folder = Path(source)
    if not (folder / PROGRAM_FILE).is_file():
        raise ProgramSourceError(f"{source} is not a compiled program (no {PROGRAM_FILE}); pass a folder written by "
                                 "`sage compile`, runs:/<run id>/program, models:/<id> or prompts:/<name>@<alias>")
    return folder


def compile_run_of(folder: Path) -> str:
    """The id of the compile run that made the program in `folder` ("" when it was not tracked)."""
    try:
        return str(json.loads((Path(folder) / TRACKING_FILE).read_text(encoding="utf-8")).get("run_id", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _cache_folder(root: Path, uri: str) -> Path:
    return root / re.sub(r"[^A-Za-z0-9_.-]+", "-", uri.split(":/", 1)[1]).strip("-")


def _note_compile_run(folder: Path, run_id: str) -> None:
    if run_id and not compile_run_of(folder):
        (folder / TRACKING_FILE).write_text(json.dumps({"run_id": run_id}), encoding="utf-8")


def _download(uri: str, root: Path) -> Path:
    import mlflow.artifacts

    folder = _cache_folder(root, uri)
    fetched = folder / uri.rstrip("/").rsplit("/", 1)[-1]  # where download_artifacts puts runs:/<id>/program
    if (fetched / PROGRAM_FILE).is_file():
        return fetched  # a run's artifacts do not change: fetched once
    try:
        folder.mkdir(parents=True, exist_ok=True)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    except Exception as error:
        _remove_if_empty(folder)
        raise ProgramSourceError(f"could not fetch {uri} from MLflow ({type(error).__name__}); list runs with "
                                 "`sage runs list`") from None
    if uri.startswith("runs:/"):
        _note_compile_run(local, uri.removeprefix("runs:/").split("/", 1)[0])
    return local


def _run_of_prompt(uri: str) -> str:
    import mlflow.genai

    try:
        prompt = mlflow.genai.load_prompt(uri)
    except Exception:
        raise ProgramSourceError(f"no registered prompt {uri}; list versions with `sage prompts list`") from None
    run_id = (prompt.tags or {}).get("run_id")
    if not run_id and (prompt.tags or {}).get("baseline") == "true":
        raise ProgramSourceError(f"prompt {uri} is the uncompiled baseline, not a compiled program: leave out "
                                 "--program (generate) or name `baseline` (evaluate --programs)")
    if not run_id:
        raise ProgramSourceError(f"prompt {uri} was not registered by `sage compile` (no run_id tag)")
    return run_id


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _from_model(uri: str, root: Path) -> Path:
    """The logged model's prompts (its DSPy state), written where build_program can load them."""
    folder = _cache_folder(root, uri)
    if (folder / PROGRAM_FILE).is_file():
        return folder
    try:
        program = load_program(uri)
    except TrackingError as error:
        raise ProgramSourceError(str(error)) from None
    folder.mkdir(parents=True, exist_ok=True)
    program.save(str(folder / PROGRAM_FILE))  # the same JSON state `sage compile` writes
    _note_compile_run(folder, _source_run_of_model(uri))
    return folder


def _source_run_of_model(uri: str) -> str:
    from mlflow import MlflowClient

    try:
        return MlflowClient().get_logged_model(uri.removeprefix("models:/").split("/", 1)[0]).source_run_id or ""
    except Exception:
        return ""
