"""MLflow runs that a killed `sage generate` left RUNNING: ended KILLED by the next run of the same folder.

A SIGKILL (or a lost machine) gives a process no chance to end its MLflow run, so it stayed RUNNING forever.
Each generate run is tagged with its run folder (`sage.run_folder`, the resolved path); the next generate of
that folder, once it holds the folder's lock (runs/folder.py: only one process writes a folder, and the kernel
drops a dead one's lock), ends every other RUNNING run of the folder KILLED: whoever ran it is gone. A new
MLflow run is started for the resumed session rather than reopening the old one: the killed session's metrics
and traces stay as they were, and the new run's summary covers the whole run (the ledger keeps the spend).
"""

from pathlib import Path

from mlflow import MlflowClient

from sage_dspy.tracking.runs import TrackedRun
from sage_dspy.tracking.store import warn_failed

RUN_FOLDER_TAG = "sage.run_folder"


def folder_tag(folder: Path) -> dict[str, str]:
    return {RUN_FOLDER_TAG: str(Path(folder).resolve())}


def end_stale_runs(run: TrackedRun, folder: Path) -> list[str]:
    """End KILLED every RUNNING run of `folder` but `run`; returns their ids. Call it holding the folder's lock."""
    if run.run_id is None:
        return []
    path = folder_tag(folder)[RUN_FOLDER_TAG].replace("\\", "\\\\").replace("'", "\\'")
    try:
        client = MlflowClient()
        experiment = client.get_run(run.run_id).info.experiment_id
        stale = [found.info.run_id for found in client.search_runs(
            [experiment], filter_string=f"tags.`{RUN_FOLDER_TAG}` = '{path}' and attributes.status = 'RUNNING'")
            if found.info.run_id != run.run_id]
        for run_id in stale:
            client.set_terminated(run_id, "KILLED")
        return stale
    except Exception as exc:
        warn_failed(f"end the MLflow runs a killed run of {folder} left open", exc)
        return []
