"""A run folder on disk: its settings, and records appended as seeds finish, so a killed run resumes.

`config.json` is written first and names the settings; `records.jsonl` gets one line per finished seed,
flushed and synced at once. Re-running the same command reads what is there (a torn last line from a kill is
cut off), skips the seeds already done, and appends the rest. Other settings in the same folder are refused:
two runs must never mix in one file. At the end of a run, records.jsonl is rewritten in seed order beside
dataset.jsonl (the kept pairs).

One process writes a folder at a time: it holds an OS lock (flock) on `.lock` for the whole run, which the
kernel drops when the process dies, so a killed run never blocks the next. A folder that is neither empty nor
a run of ours (the user's own files) is refused before anything in it is touched.
"""

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy import outputs
from sage_dspy.outputs import LOCK_FILE, RUN, OutputError, check_output_folder, mark
from sage_dspy.jsonl import iter_jsonl, torn_tail
from sage_dspy.redact import redact
from sage_dspy.method.failures import JUDGE, is_service_kind, kind_of_entry
from sage_dspy.runs.records import dataset_row, shape_problem

SETTINGS_FILE = "config.json"
RECORDS_FILE = "records.jsonl"
LEDGER_FILE = "spend.jsonl"  # every paid LM call as it returns (runs/ledger.py); reset with the records
TRACKING_FILE = "mlflow.json"  # the MLflow run id of a tracked run, written after it by tracking.run_logging
ENDPOINTS_SETTING = "endpoints"  # {role: fingerprint of the endpoint its LM reached} (lm.endpoint), real LMs only
# Settings that do not change a run's records: where it is written and where indexes are cached; and the
# endpoints, which a user may fix between runs (a changed one retries the failed seeds: `retried_on_resume`).
NOT_RUN_SETTINGS = ("out_dir", "index_root", ENDPOINTS_SETTING)
INDEX_SETTING = "retriever_index"  # which index the retrieval server serves (search/identity.py)
# Settings older folders lack: compared only where the folder and this run both hold one, and kept from the
# folder when this run could not tell (a retriever that did not answer which index it serves).
RECORDED_SINCE = (INDEX_SETTING,)



class RunMismatchError(SageError, ValueError):
    """The output folder holds a run made with other settings."""


class RunFolderError(OutputError):
    """A run folder that cannot be used: in use by another process, or corrupt. (A file, read-only, not a run or
    full: outputs.OutputError, its base.)"""


def check_out_folder(folder: Path) -> None:
    """Refuse, before any work, an --out that cannot become a run folder (outputs.py's rule: a file, under a
    file, read-only, inside another output of sage's, or a folder of other files). Nothing is created or changed.
    An empty records file alone is what a run killed before writing its settings leaves: still empty."""
    folder = Path(folder)
    records = folder / RECORDS_FILE
    killed_early = (RECORDS_FILE,) if records.is_file() and records.stat().st_size == 0 else ()
    check_output_folder(folder, RUN, empty_enough=killed_early)
    if records.exists() and not records.is_file():  # never replaced, not even with --fresh: sage did not make it
        raise RunFolderError(f"run records {records} is not a file; move it out of the way, or pass another --out")


def disk_full_as_one_line(path: Path):
    """ENOSPC while writing `path` becomes one line: what is on disk already stays, and a re-run resumes."""
    return outputs.disk_full_as_one_line(path, "the seeds finished so far are saved (the same command resumes)")


def run_settings(settings: dict) -> dict:
    return {key: value for key, value in settings.items() if key not in NOT_RUN_SETTINGS}


def finished_run(folder: Path) -> bool:
    """A summary is written at the end of a run; one stopped by a call budget is not finished."""
    try:
        summary = json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(summary, dict) and not summary.get("stopped")


def same_finished_run(folder: Path, settings: dict) -> bool:
    """`folder` holds a finished run made with these settings: running them again there would add nothing."""
    try:
        saved = json.loads((Path(folder) / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(saved, dict) and run_settings(saved) == run_settings(settings) and finished_run(folder)


def seed_key(seed_id: str, target: int, answer_type: str) -> str:
    return f"{seed_id}|{target}|{answer_type}"


def record_key(record: dict) -> str:
    requested = record.get("requested_answer_type", record.get("answer_type"))  # folders from before 0.1.0
    return seed_key(record["seed_id"], record["target"], requested)


class RunFolder:
    def __init__(self, folder: Path, settings: dict, *, fresh: bool = False, earlier: dict | None = None):
        """`earlier`: values an older sage recorded for these same settings, which resume as they did."""
        self.folder, self.settings, self.fresh = Path(folder), settings, fresh
        self.earlier = earlier or {}
        self.records_path = self.folder / RECORDS_FILE
        self.endpoint_changed = False  # set by open(): the resumed run reached its LMs elsewhere

    @contextlib.contextmanager
    def locked(self) -> Iterator["RunFolder"]:
        """Hold the folder's lock for the block: a second writer (even with --fresh) is refused with one line
        naming the process that holds it. The kernel releases it when this process ends, however it ends."""
        check_out_folder(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / LOCK_FILE).open("a+", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "unknown"
                raise RunFolderError(f"--out {self.folder} is being written by another sage process (pid {holder}); "
                                     "wait for it to finish or stop it, or pass another --out") from None
            lock.seek(0)
            lock.truncate()
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            check_out_folder(self.folder)  # as it is now that no one else can change it
            yield self

    def open(self, seed_keys: set[str] | None = None) -> list[dict]:
        """Prepare the folder and return the records of seeds already finished (none for a new run). A record of
        a seed not in `seed_keys` (when the run's seeds are known up front) is refused before anything changes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        settings_file = self.folder / SETTINGS_FILE
        if self.fresh or not self.records_path.exists():
            mark(self.folder, RUN)  # first, before anything else of the run goes in
            self.records_path.write_text("", encoding="utf-8")
            (self.folder / TRACKING_FILE).unlink(missing_ok=True)  # it named the MLflow run of other records
            (self.folder / LEDGER_FILE).unlink(missing_ok=True)  # the spend of those records
        elif settings_file.exists():
            saved = self._saved_settings(settings_file)
            for key in RECORDED_SINCE:
                if key in saved and key not in self.settings:
                    self.settings[key] = saved[key]
            changed = sorted(key for key in set(run_settings(saved)) | set(run_settings(self.settings))
                             if self._differs(key, saved))
            if changed == [INDEX_SETTING]:
                raise RunMismatchError(
                    f"{self.folder} holds a run made against another index behind --retriever (index "
                    f"{saved[INDEX_SETTING]} then, {self.settings[INDEX_SETTING]} now); serve the run's index there "
                    "again, pass another --out, or --fresh to start over")
            if changed:
                raise RunMismatchError(
                    f"{self.folder} holds a run with other settings ({', '.join(changed)}); resume it with the "
                    "same command, pass another --out, or --fresh to start over")
            # A folder from before endpoints were recorded cannot tell; it resumes as it always did.
            self.endpoint_changed = ENDPOINTS_SETTING in saved and \
                saved[ENDPOINTS_SETTING] != self.settings.get(ENDPOINTS_SETTING, {})
        finished = self._finished_records()  # a corrupt line is refused before anything is rewritten
        if seed_keys is not None:
            self._check_only(finished, seed_keys)
        mark(self.folder, RUN)  # a run from before the marker gets one once it is known to resume (else: no-op)
        with disk_full_as_one_line(settings_file):
            settings_file.write_text(json.dumps(self.settings, indent=2), encoding="utf-8")
        return finished

    def _differs(self, key: str, saved: dict) -> bool:
        if saved.get(key) == self.settings.get(key) or (key in self.earlier and saved.get(key) == self.earlier[key]):
            return False
        return key not in RECORDED_SINCE or (key in saved and key in self.settings)

    def _saved_settings(self, settings_file: Path) -> dict:
        try:
            saved = json.loads(settings_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            saved = error
        if not isinstance(saved, dict):
            raise RunFolderError(f"{settings_file} is corrupt (not a JSON object of settings); pass --fresh to start "
                                 "the run over (its records are discarded), or another --out")
        return saved

    def _finished_records(self) -> list[dict]:
        """Whole lines only: a kill during a write leaves a torn last line, which is cut off here. Any other bad
        line is refused with its number and the two ways out."""
        torn = torn_tail(self.records_path)
        if torn:
            with self.records_path.open("r+b") as handle:
                handle.truncate(self.records_path.stat().st_size - torn)
        recover = "to recover, delete that line (its seed runs again) or pass --fresh to start over"
        records = []
        for number, record in enumerate(iter_jsonl(self.records_path, label="run records", fix=recover), start=1):
            problem = shape_problem(record)
            if problem:
                raise RunFolderError(f"run records {self.records_path}: line {number} {problem}; {recover}")
            records.append(record)
        return records

    def _check_only(self, finished: list[dict], seed_keys: set[str]) -> None:
        """Refuse a record of a seed this run does not draw (a line added by hand, or copied from another run):
        the final rewrite keeps the run's seeds only, so it would be dropped without a word."""
        for number, record in enumerate(finished, start=1):
            if record_key(record) not in seed_keys:
                raise RunFolderError(f"run records {self.records_path}: line {number} (seed {record['seed_id']!r}) "
                                     "is not one "
                                     "of this run's seeds and would be dropped when it finishes; move that line to "
                                     "a file of your own, or pass another --out")

    def append(self, record: dict) -> None:
        """One finished seed, on disk before the next one starts; redacted, like everything a run writes."""
        with disk_full_as_one_line(self.records_path), self.records_path.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(redact(record), ensure_ascii=False) + "\n")
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


def done_records(finished: list[dict], endpoint_changed: bool = False) -> dict[str, dict]:
    """The finished records a resumed run keeps, by record_key (the others are tried again: `retried_on_resume`);
    the cache serves their finished calls."""
    return {record_key(r): r for r in finished if not retried_on_resume(r, endpoint_changed)}


def retried_on_resume(record: dict, endpoint_changed: bool) -> bool:
    """What a re-run tries again: a seed the LM service failed, wholly or in some attempts (rate limits, 5xx,
    timeouts, a malformed reply such as a 200 that is not JSON, a judge that could not rule: `failed_at_service`),
    after the retries; and, when an LM's endpoint changed since (`RunFolder.endpoint_changed`: the user fixed
    --api-base), every seed that failed in any way, a failed attempt included (an HTTP 404 from a wrong path, a
    reply the adapter could not parse). Other failures are kept: re-sent to the same endpoint, they would be
    answered alike (from the cache)."""
    if failed_at_service(record):
        return True
    if not endpoint_changed:
        return False
    attempts = (attempt for past in record.get("rounds", []) for attempt in past.get("attempts", []))
    return bool(record.get("error")) or any(attempt.get("error") for attempt in attempts)


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
        try:
            with disk_full_as_one_line(records_path.parent), records_partial.open("w", encoding="utf-8") as \
                    records_out, dataset_partial.open("w", encoding="utf-8") as dataset_out:
                for verdict in decided:
                    source.seek(offsets[record_key(verdict)])
                    record = json.loads(source.readline())
                    record.update(kept=verdict["kept"], drop_reason=verdict["drop_reason"])
                    records_out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    if record["kept"]:
                        dataset_out.write(json.dumps(dataset_row(record), ensure_ascii=False) + "\n")
        except BaseException:
            records_partial.unlink(missing_ok=True)  # the records appended so far stay as they were
            dataset_partial.unlink(missing_ok=True)
            raise
    records_partial.replace(records_path)  # write beside, then rename: a crash leaves the previous files whole
    dataset_partial.replace(dataset_path)
