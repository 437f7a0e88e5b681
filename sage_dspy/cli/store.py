"""What the MLflow store holds: `sage prompts` (versions and their diffs), `sage runs compare`, `sage ui`."""

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sage_dspy.environment import ARTIFACTS
from sage_dspy.ports import bind
from sage_dspy.cli import printing
from sage_dspy.tracking import compare
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking import ui

prompts_app = typer.Typer(help="Prompt versions registered by `sage compile`.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs logged by `sage generate` and `sage compile`.", no_args_is_help=True)


def _store() -> str:
    return tracking.configure_tracking(root=ARTIFACTS)


@prompts_app.command("list")
def prompts_list() -> None:
    """Every prompt version, with the run and validation scores that produced it."""
    _store()
    printing.prompt_versions(compare.prompt_versions())


@prompts_app.command("diff")
def prompts_diff(
    name: Annotated[str, typer.Argument(help="prompt name, e.g. sage.generator.propose.react")],
    old: Annotated[int, typer.Argument(help="older version")],
    new: Annotated[int, typer.Argument(help="newer version")],
) -> None:
    """A readable diff of two versions' instructions and demos."""
    _store()
    printing.prompt_diff(compare.diff_prompt(name, old, new))


@runs_app.command("list")
def runs_list(
    last: Annotated[int, typer.Option(min=1, help="how many recent runs")] = 20,
) -> None:
    """The newest runs, one line each: program, corpus, kept pairs and accepted rate (or the compile's score)."""
    _store()
    printing.runs_list(compare.runs_list(last))


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[Optional[list[str]], typer.Argument(help="run ids, whole or the 8 characters `runs list` "
                                                                "prints (default: the newest runs)")] = None,
    last: Annotated[int, typer.Option(min=1, help="how many recent runs when no ids are given")] = 5,
) -> None:
    """Runs side by side: recipe, program, optimizer and every metric; an evaluate run with its children."""
    _store()
    printing.runs(*compare.runs_table(run_ids or [], last=last))


def ui_command(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 5000,
) -> None:
    """Browse runs, compiled programs and prompt versions in the MLflow UI (127.0.0.1 only): the store of the
    project folder at or above the current one, or MLFLOW_TRACKING_URI."""
    bind("127.0.0.1", port).close()  # taken: one line, before a URL that could show someone else's server
    root = Path("artifacts") if os.environ.get("MLFLOW_TRACKING_URI") else ui.project_artifacts(Path.cwd())
    uri = tracking.configure_tracking(root=root)
    # Plain `mlflow ui` deadlocks at start-up offline unless litellm uses its local cost map (set on import
    # of sage_dspy); the job runner is not needed to browse.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    printing.ui_started(uri, port)
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", uri, "--workers", "1"]
    raise typer.Exit(ui.serve(command, env))
