"""The run's spend ledger: every paid LM call on disk the moment it returns, so a kill loses no spend.

A seed's record says what it cost, but it is written when the seed ends: the calls a killed process paid for
in its unfinished seeds were lost, and on resume DSPy's response cache served them again as free (a cache hit
carries no usage), so a run killed ten times reported a third fewer tokens than the same run uninterrupted.

`spend.jsonl` in the run folder gets one line per paid response, `{"seed", "role", "model", "prompt_tokens",
"completion_tokens", "session"}`, written to the OS as the call returns (before its seed ends: a killed process
loses none), and synced to the disk with its seed's record, or sooner once a second has passed since the last
sync (a power cut loses at most that second: syncing every line cost 6-8 ms a line here, 3.4 s of a 19.4 s
offline run of 20 seeds); a torn last line from a kill is cut off, as in records.jsonl. When a seed's record is written, a `{"settled": seed, "nth": n}`
line goes first: that seed's spend so far is in its n-th record. A resumed session reads the lines no record
settled (what killed processes paid on seeds they never finished) and:

- adds them to the seed's record when the seed finishes now. The calls it makes again are served from the cache
  (no usage, so no second ledger line); each such cache hit of a role's model replays one paid line of an earlier
  session (at most as many as there are), so it is counted once, as paid, not as a new free call;
- charges them to the budget at once (`--max-calls`, `--max-cost`), and
- lists those of seeds that never finish (`unsettled_rows`: a budget stopped the run) in the run's usage.

A marker is trusted only when its record reached records.jsonl (the seed has at least n records): a kill between
the two writes leaves the spend unsettled, to be counted with the seed's next record.
"""

import contextlib
import contextvars
import json
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from sage_dspy.jsonl import iter_jsonl, torn_tail
from sage_dspy.lm.usage import reporting_spend, usage_rows
from sage_dspy.runs.folder import LEDGER_FILE, RunFolder, RunFolderError, disk_full_as_one_line, record_key

SYNC_SECONDS = 1.0  # the longest a line waits for fsync (it reached the OS at once)
_active: contextvars.ContextVar["SpendLedger | None"] = contextvars.ContextVar("sage_spend_ledger", default=None)

Spend = dict[tuple[str, str], list[int]]  # (role, model) -> [paid calls, prompt tokens, completion tokens]


class SpendLedger:
    """One session's view of `folder`'s ledger: what earlier sessions paid and no record holds yet, and the
    file this session appends to. `finished`: every record line of the folder (superseded ones too)."""

    def __init__(self, folder: Path, finished: list[dict]):
        self.path = Path(folder) / LEDGER_FILE
        self.session = uuid.uuid4().hex[:12]
        self._records = Counter(record_key(record) for record in finished)
        self._unsettled = self._read_unsettled()
        self._paid_now: dict[str, Counter] = defaultdict(Counter)  # seed -> (role, model) -> paid calls
        self._lock = threading.Lock()
        self._sink, self._synced = None, time.monotonic()

    def _read_unsettled(self) -> dict[str, Spend]:
        if not self.path.exists():
            return {}
        torn = torn_tail(self.path)
        if torn:  # killed mid-write: that call is not in the cache either, so the resume pays it again
            with self.path.open("r+b") as handle:
                handle.truncate(self.path.stat().st_size - torn)
        unsettled: dict[str, Spend] = {}
        for line in _lines(self.path):
            if _is_marker(line):
                if self._records[line["settled"]] >= line["nth"]:
                    unsettled.pop(line["settled"], None)
                continue
            spent = unsettled.setdefault(line["seed"], {}).setdefault((line["role"], line["model"]), [0, 0, 0])
            spent[0], spent[1], spent[2] = spent[0] + 1, spent[1] + line["prompt_tokens"], \
                spent[2] + line["completion_tokens"]
        return unsettled

    @staticmethod
    def check(run: RunFolder) -> None:
        """Refuse a spoiled ledger in one line before `run.open()` changes anything in the folder (a new or
        --fresh run starts a new ledger: nothing to check)."""
        path = run.folder / LEDGER_FILE
        if not run.fresh and run.records_path.exists() and path.exists():
            for _ in _lines(path, whole_lines_only=True):  # a torn last line is cut later, not refused
                pass

    def __enter__(self) -> "SpendLedger":
        self._sink = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            os.fsync(self._sink.fileno())
            self._sink.close()
            self._sink = None

    @contextlib.contextmanager
    def active(self) -> Iterator["SpendLedger"]:
        """Seeds run inside the block (on any thread that copies the context) write their spend here."""
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def _append(self, line: dict, sync: bool = False) -> None:
        with self._lock, disk_full_as_one_line(self.path):
            if self._sink is None:  # a thread that outlived the run (it never does here): appended all the same
                with self.path.open("a", encoding="utf-8") as late:
                    late.write(json.dumps(line, ensure_ascii=False) + "\n")
                return
            self._sink.write(json.dumps(line, ensure_ascii=False) + "\n")
            self._sink.flush()  # in the OS now: a kill of this process cannot lose it
            if sync or time.monotonic() - self._synced >= SYNC_SECONDS:
                os.fsync(self._sink.fileno())
                self._synced = time.monotonic()

    def pay(self, seed: str, role: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        self._append({"seed": seed, "role": role, "model": model, "prompt_tokens": prompt_tokens,
                      "completion_tokens": completion_tokens, "session": self.session})
        with self._lock:
            self._paid_now[seed][(role, model)] += 1

    def earlier_spend(self) -> dict:
        """What earlier sessions paid that no record holds, as a record's usage fields (for the budget)."""
        return _usage_fields(self.unsettled_rows())

    def unsettled_rows(self) -> list[dict]:
        """That spend as usage rows (role, model, calls, tokens), summed over seeds."""
        total: Spend = {}
        for spend in self._unsettled.values():
            for key, (calls, prompt, completion) in spend.items():
                into = total.setdefault(key, [0, 0, 0])
                into[0], into[1], into[2] = into[0] + calls, into[1] + prompt, into[2] + completion
        return _rows(total)

    def settle(self, record: dict) -> dict:
        """`record` with its seed's unsettled spend added, marked settled in the ledger before the record is
        written (the caller writes it next). Its cache hits that replay earlier paid calls are not counted
        again."""
        key = record_key(record)
        earlier = self._unsettled.pop(key, {})
        if earlier:
            merged = {(row["role"], row["model"]): [row["lm_calls"], row["prompt_tokens"], row["completion_tokens"]]
                      for row in record.get("lm_usage", [])}
            failures = {(row["role"], row["model"]): row.get("parse_failures", 0) for row in record.get("lm_usage", [])}
            for role_model, (calls, prompt, completion) in earlier.items():
                now = merged.setdefault(role_model, [0, 0, 0])
                cache_hits = max(now[0] - self._paid_now[key][role_model], 0)
                replays = min(cache_hits, calls)
                now[0], now[1], now[2] = now[0] - replays + calls, now[1] + prompt, now[2] + completion
            rows = _rows(merged, failures)
            record = {**record, **_usage_fields(rows)}
        self._records[key] += 1
        self._append({"settled": key, "nth": self._records[key], "session": self.session}, sync=True)
        return record


def _lines(path: Path, whole_lines_only: bool = False) -> Iterator[dict]:
    fix = f"delete that line, or the whole {LEDGER_FILE} (the spend it lists is then forgotten)"
    lines = iter_jsonl(path, label="spend ledger", fix=fix, whole_lines_only=whole_lines_only)
    for number, line in enumerate(lines, start=1):
        if not (_is_marker(line) or _is_paid_call(line)):
            raise RunFolderError(f"spend ledger {path}: line {number} is neither a paid call nor a settled seed; "
                                 f"{fix}")
        yield line


def _is_marker(line: dict) -> bool:
    return isinstance(line.get("settled"), str) and isinstance(line.get("nth"), int)


def _is_paid_call(line: dict) -> bool:
    return all(isinstance(line.get(key), str) for key in ("seed", "role", "model")) and \
        all(isinstance(line.get(key), int) for key in ("prompt_tokens", "completion_tokens"))


def _rows(spend: Spend, parse_failures: dict | None = None) -> list[dict]:
    return usage_rows({key: calls for key, (calls, _, _) in spend.items()},
                      {key: [prompt, completion] for key, (_, prompt, completion) in spend.items()},
                      parse_failures)


def _usage_fields(rows: list[dict]) -> dict:
    return {"lm_usage": rows, "lm_calls": sum(r["lm_calls"] for r in rows),
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
            "completion_tokens": sum(r["completion_tokens"] for r in rows)}


@contextlib.contextmanager
def spending_on(seed: str) -> Iterator[None]:
    """The LM calls made inside the block are paid for `seed` in the active ledger (none: nothing written)."""
    ledger = _active.get()
    sink = None if ledger is None else (lambda role, model, prompt, completion:
                                        ledger.pay(seed, role, model, prompt, completion))
    with reporting_spend(sink):
        yield
