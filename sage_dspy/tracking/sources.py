"""Where a compiled program can come from, resolved to one local folder holding `program.json`.

- a folder written by `sage compile` (artifacts/programs/<recipe>-<optimizer>-<stamp>/)
- `runs:/<run id>/program`: that folder as logged with the compile run
- `models:/<model id>`: the compiled program logged as an MLflow dspy model
- `prompts:/<name>/<version>` or `prompts:/<name>@<alias>`: a registered prompt version; the program is the one
  compiled by the run that registered it (its `run_id` tag)
"""

import tempfile
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.tracking.programs import load_program
from sage_dspy.tracking.store import TrackingError
from sage_dspy.runs.program import PROGRAM_FILE


class ProgramSourceError(SageError, LookupError):
    """One line: which source could not be used, and what to pass instead."""


def resolve_program(source: str) -> Path:
    if source.startswith("prompts:/"):
        return resolve_program(f"runs:/{_run_of_prompt(source)}/program")
    if source.startswith("models:/"):
        folder = _from_model(source)
    elif ":/" in source:
        folder = _download(source)
    else:
        folder = Path(source)
    if not (folder / PROGRAM_FILE).is_file():
        raise ProgramSourceError(f"{source} is not a compiled program (no {PROGRAM_FILE}); pass a folder written by "
                                 "`sage compile`, runs:/<run id>/program, models:/<id> or prompts:/<name>@<alias>")
    return folder


def _download(uri: str) -> Path:
    import mlflow.artifacts

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as error:
        raise ProgramSourceError(f"could not fetch {uri} from MLflow ({type(error).__name__}); list runs with "
                                 "`sage runs compare`") from None


def _run_of_prompt(uri: str) -> str:
    import mlflow.genai

    try:
        prompt = mlflow.genai.load_prompt(uri)
    except Exception:
        raise ProgramSourceError(f"no registered prompt {uri}; list versions with `sage prompts list`") from None
    run_id = (prompt.tags or {}).get("run_id")
    if not run_id:
        raise ProgramSourceError(f"prompt {uri} was not registered by `sage compile` (no run_id tag)")
    return run_id


def _from_model(uri: str) -> Path:
    """The logged model's prompts (its DSPy state), written where build_program can load them."""
    try:
        program = load_program(uri)
    except TrackingError as error:
        raise ProgramSourceError(str(error)) from None
    folder = Path(tempfile.mkdtemp(prefix="sage-program-"))
    program.save(str(folder / PROGRAM_FILE))  # the same JSON state `sage compile` writes
    return folder
