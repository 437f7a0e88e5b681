"""A run folder on disk: its settings, and records appended as seeds finish, so a killed run resumes.

`config.json` is written first and names the settings; `records.jsonl` gets one line per finished seed,
flushed and synced at once. Re-running the same command reads what is there (a torn last line from a kill is
cut off), skips the seeds already done, and appends the rest. Other settings in the same folder are refused:
two runs must never mix in one file.
"""

import json
import os
from pathlib import Path

from sage_dspy.errors import SageError

SETTINGS_FILE = "config.json"
RECORDS_FILE = "records.jsonl"
# Settings that do not change a run's records: where it is written and where indexes are cached.
NOT_RUN_SETTINGS = ("out_dir", "index_root")


class RunMismatchError(SageError, ValueError):
    """The output folder holds a run made with other settings."""


def run_settings(settings: dict) -> dict:
    return {key: value for key, value in settings.items() if key not in NOT_RUN_SETTINGS}


def seed_key(seed_id: str, target: int, answer_type: str) -> str:
    return f"{seed_id}|{target}|{answer_type}"


def record_key(record: dict) -> str:
    requested = record.get("requested_answer_type", record.get("answer_type"))  # folders from before 0.1.0
    return seed_key(record["seed_id"], record["target"], requested)


class RunFolder:
    def __init__(self, folder: Path, settings: dict, *, fresh: bool = False):
        self.folder, self.settings, self.fresh = Path(folder), settings, fresh
        self.records_path = self.folder / RECORDS_FILE

    def open(self) -> list[dict]:
        """Prepare the folder and return the records of seeds already finished (none for a new run)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        settings_file = self.folder / SETTINGS_FILE
        if self.fresh or not self.records_path.exists():
            self.records_path.write_text("", encoding="utf-8")
        elif settings_file.exists():
            saved = json.loads(settings_file.read_text(encoding="utf-8"))
            changed = sorted(key for key in set(run_settings(saved)) | set(run_settings(self.settings))
                             if saved.get(key) != self.settings.get(key))
            if changed:
                raise RunMismatchError(
                    f"{self.folder} holds a run with other settings ({', '.join(changed)}); resume it with the "
                    "same command, pass another --out, or --fresh to start over")
        settings_file.write_text(json.dumps(self.settings, indent=2), encoding="utf-8")
        return self._finished_records()

    def _finished_records(self) -> list[dict]:
        """Whole lines only: a kill during a write leaves a torn last line, which is cut off here."""
        data = self.records_path.read_bytes()
        whole = data[:data.rfind(b"\n") + 1]
        if len(whole) != len(data):
            with self.records_path.open("r+b") as handle:
                handle.truncate(len(whole))
        return [json.loads(line) for line in whole.decode("utf-8").splitlines() if line.strip()]

    def append(self, record: dict) -> None:
        """One finished seed, on disk before the next one starts."""
        with self.records_path.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
