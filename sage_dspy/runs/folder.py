"""A run folder on disk: its settings, and records appended as seeds finish, so a killed run resumes.

`config.json` is written first and names the settings; `records.jsonl` gets one line per finished seed,
flushed and synced at once. Re-running the same command reads what is there (a torn last line from a kill is
cut off), skips the seeds already done, and appends the rest. Other settings in the same folder are refused:
two runs must never mix in one file. At the end of a run, records.jsonl is rewritten in seed order beside
dataset.jsonl (the kept pairs).
"""

import json
import os
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.method.failures import JUDGE, is_service_kind, kind_of_entry
from sage_dspy.runs.records import dataset_row

SETTINGS_FILE = "config.json"
RECORDS_FILE = "records.jsonl"
TRACKING_FILE = "mlflow.json"  # the MLflow run id of a tracked run, written after it by tracking.run_logging
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
            (self.folder / TRACKING_FILE).unlink(missing_ok=True)  # it named the MLflow run of other records
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


def failed_at_service(record: dict) -> bool:
    """The seed, or one of its attempts, failed because the LM service did (rate limits, 5xx, timeouts,
    malformed replies, after the retries) or the judge could not rule, not because of anything in the seed. An
    attempt lost that way leaves its round's Avg@K counted over fewer than K attempts, so the seed is redone."""
    if record.get("error"):
        return is_service_kind(kind_of_entry(record)[0])
    return any(_attempt_failed_at_service(attempt)
               for past in record.get("rounds", []) for attempt in past.get("attempts", []))


def _attempt_failed_at_service(attempt: dict) -> bool:
    if not attempt.get("error"):
        return False
    kind, failed_in = kind_of_entry(attempt)
    return failed_in == JUDGE or is_service_kind(kind)


def done_records(finished: list[dict]) -> dict[str, dict]:
    """The finished records a resumed run keeps, by record_key. A seed the LM service failed, wholly or in some
    attempts, is tried again; the cache serves its finished calls."""
    return {record_key(r): r for r in finished if not failed_at_service(r)}


def rewrite_records(records_path: Path, dataset_path: Path, decided: list[dict]) -> None:
    """records.jsonl in seed order with each seed's verdict (`kept`, `drop_reason` from mark_kept), and
    dataset.jsonl, streamed from the lines the run appended: one full record in memory at a time. A seed's
    last line wins (a seed the service failed and a later run retried has two)."""
    wanted, offsets = {record_key(r) for r in decided}, {}
    with records_path.open("rb") as source:
        offset = 0
        for line in source:
            if line.strip():
                key = record_key(json.loads(line))
                if key in wanted:
                    offsets[key] = offset
            offset += len(line)
        records_partial = records_path.with_suffix(records_path.suffix + ".partial")
        dataset_partial = dataset_path.with_suffix(dataset_path.suffix + ".partial")
        with records_partial.open("w", encoding="utf-8") as records_out, \
                dataset_partial.open("w", encoding="utf-8") as dataset_out:
            for verdict in decided:
                source.seek(offsets[record_key(verdict)])
                record = json.loads(source.readline())
                record.update(kept=verdict["kept"], drop_reason=verdict["drop_reason"])
                records_out.write(json.dumps(record, ensure_ascii=False) + "\n")
                if record["kept"]:
                    dataset_out.write(json.dumps(dataset_row(record), ensure_ascii=False) + "\n")
    records_partial.replace(records_path)  # write beside, then rename: a crash leaves the previous files whole
    dataset_partial.replace(dataset_path)
