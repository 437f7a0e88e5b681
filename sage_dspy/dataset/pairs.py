"""The kept pairs of finished run folders: records.jsonl read back whole, with each run's settings and summary.

A run is finished when `sage generate` has decided every record (`kept`, or a `drop_reason`) and written
summary.json for exactly the records on disk. A run still going, or killed part-way, is refused: its records
are not decided yet, so which pairs are kept is not known.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.jsonl import read_jsonl, torn_tail
from sage_dspy.runs.folder import RECORDS_FILE, SETTINGS_FILE, TRACKING_FILE
from sage_dspy.runs.records import shape_problem

SUMMARY_FILE = "summary.json"


class RunNotReadyError(SageError, ValueError):
    """A folder that holds no finished run to export."""


@dataclass(frozen=True)
class Run:
    """One finished run folder: what produced its pairs."""

    folder: Path
    settings: dict  # config.json
    summary: dict  # summary.json
    mlflow_run_id: str  # "" when the run was not tracked

    @property
    def name(self) -> str:
        return self.folder.name


def read_run(folder: Path) -> tuple[Run, list[dict]]:
    """The run in `folder` and its kept records, in seed order; each record gets `source_run`, the run's
    name, so pairs of several runs can be told apart."""
    folder = Path(folder)
    records_path = folder / RECORDS_FILE
    if records_path.exists() and not records_path.is_file():
        raise RunNotReadyError(f"{records_path} is not a file; pass a run folder written by `sage generate --out`")
    if not records_path.is_file():
        raise RunNotReadyError(f"{folder} holds no {RECORDS_FILE}; pass a folder written by `sage generate --out`")
    records, torn = _read_lines(records_path)
    for number, record in enumerate(records, start=1):
        if problem := shape_problem(record, resumable=False):
            raise RunNotReadyError(f"run records {records_path}: line {number} {problem}; fix or delete that line "
                                   f"(delete: its seed runs again with `sage generate --out {folder}`)")
    if not records and not torn:
        raise RunNotReadyError(f"{folder}/{RECORDS_FILE} holds no records; run `sage generate --out {folder}` "
                               "to completion first")
    summary = _read_json(folder / SUMMARY_FILE)
    undecided = any(not r.get("kept") and not r.get("drop_reason") and not r.get("error") for r in records)
    if torn or undecided or summary is None or summary.get("overall", {}).get("seeds") != len(records):
        raise RunNotReadyError(f"{folder} holds a run still in progress (or stopped before it finished); let it "
                               "finish, or re-run the same `sage generate` command to complete it, then export")
    tracking = _read_json(folder / TRACKING_FILE) or {}
    run = Run(folder, _read_json(folder / SETTINGS_FILE) or {}, summary, str(tracking.get("run_id", "")))
    kept = [{**record, "source_run": run.name} for record in records if record.get("kept")]
    return run, kept


def read_runs(folders: list[Path]) -> tuple[list[Run], list[dict]]:
    """Every run and all their kept pairs, runs in the order given; at least one pair, or a one-line error."""
    runs, pairs = [], []
    for folder in folders:
        run, kept = read_run(folder)
        runs.append(run)
        pairs.extend(kept)
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise RunNotReadyError(f"two run folders share the name {_first_repeat(names)!r}; pairs are labelled by "
                               "folder name, so export runs with distinct folder names")
    if not pairs:
        raise RunNotReadyError(f"no kept pair in {', '.join(str(f) for f in folders)}; generate more seeds "
                               "(or easier targets) before exporting")
    return runs, pairs


def _read_lines(path: Path) -> tuple[list[dict], bool]:
    """Whole lines only, and whether a torn last line (a writer still appending, or killed) was left out.
    Read-only: unlike RunFolder, exporting never repairs a run folder."""
    records = read_jsonl(path, label="run records", whole_lines_only=True,
                         fix=f"re-run `sage generate --out {path.parent} --fresh` to write it anew")
    return records, torn_tail(path) > 0


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _first_repeat(names: list[str]) -> str:
    seen = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return ""
