"""The spend ledger: paid calls on disk as they return, counted once across kills (runs/ledger.py)."""

import json

from sage_dspy.lm.usage import RoleUsageTracker, acting_as, counting_usage
from sage_dspy.runs.budget import CallBudget
from sage_dspy.runs.folder import RunFolder
from sage_dspy.runs.ledger import LEDGER_FILE, SpendLedger, spending_on

SEED, OTHER = "p-1|2|date", "p-2|3|name"
MODEL = "openai/m"


def record(seed: str, calls: int, prompt: int, completion: int, role: str = "solver") -> dict:
    seed_id, target, answer_type = seed.split("|")
    return {"seed_id": seed_id, "target": int(target), "requested_answer_type": answer_type, "accepted": False,
            "lm_calls": calls, "prompt_tokens": prompt, "completion_tokens": completion,
            "lm_usage": [{"role": role, "model": MODEL, "lm_calls": calls, "prompt_tokens": prompt,
                          "completion_tokens": completion, "parse_failures": 0}]}


def pay(ledger: SpendLedger, seed: str, *tokens: tuple[int, int], role: str = "solver") -> None:
    """Paid responses as DSPy reports them, through the usage tracker inside the seed's block."""
    with ledger.active(), spending_on(seed), counting_usage(), acting_as(role):
        import dspy

        tracker = dspy.settings.usage_tracker
        assert isinstance(tracker, RoleUsageTracker)
        for prompt, completion in tokens:
            tracker.add_usage(MODEL, {"prompt_tokens": prompt, "completion_tokens": completion})


def test_a_killed_sessions_spend_is_charged_at_once_and_counted_once_in_the_seeds_record(tmp_path):
    with SpendLedger(tmp_path, []) as killed:
        pay(killed, SEED, (100, 10), (200, 20))  # then the process is killed: no record, no marker
    with (tmp_path / LEDGER_FILE).open("a") as sink:
        sink.write('{"seed": "p-1|2|date", "role": "sol')  # killed mid-write
    resumed = SpendLedger(tmp_path, [])
    assert resumed.earlier_spend()["lm_calls"] == 2 and resumed.earlier_spend()["prompt_tokens"] == 300
    budget = CallBudget(None)
    budget.charge(resumed.earlier_spend())
    assert budget.spent == 2  # --max-calls sees what the killed process paid

    with resumed:
        pay(resumed, SEED, (300, 30))  # the third call is new; the first two come back from the cache
        finished = resumed.settle(record(SEED, calls=3, prompt=300, completion=30))
    # 2 cache hits replay the 2 paid calls: 3 calls in all, every token once
    assert (finished["lm_calls"], finished["prompt_tokens"], finished["completion_tokens"]) == (3, 600, 60)
    assert resumed.unsettled_rows() == []

    again = SpendLedger(tmp_path, [finished])  # the record reached records.jsonl: its marker counts
    assert again.earlier_spend()["lm_calls"] == 0
    lines = (tmp_path / LEDGER_FILE).read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # the torn line was cut off before appending


def test_a_marker_whose_record_never_reached_disk_leaves_the_spend_unsettled(tmp_path):
    with SpendLedger(tmp_path, []) as ledger:
        pay(ledger, SEED, (100, 10))
        ledger.settle(record(SEED, calls=1, prompt=100, completion=10))  # killed before the record was written
        pay(ledger, OTHER, (50, 5), role="generator")
    resumed = SpendLedger(tmp_path, [])
    rows = {row["role"]: row for row in resumed.unsettled_rows()}
    assert (rows["solver"]["lm_calls"], rows["solver"]["prompt_tokens"]) == (1, 100)
    assert (rows["generator"]["lm_calls"], rows["generator"]["completion_tokens"]) == (1, 5)


def test_calls_outside_a_ledger_write_nothing_and_fresh_forgets_the_spend(tmp_path):
    with counting_usage() as spent, spending_on(SEED), acting_as("judge"):
        import dspy

        dspy.settings.usage_tracker.add_usage(MODEL, {"prompt_tokens": 7, "completion_tokens": 1})
    assert spent["prompt_tokens"] == 7 and not (tmp_path / LEDGER_FILE).exists()
    RunFolder(tmp_path, {"seeds": 1}).open()
    with SpendLedger(tmp_path, []) as ledger:
        pay(ledger, SEED, (10, 1))
    assert (tmp_path / LEDGER_FILE).exists()
    RunFolder(tmp_path, {"seeds": 1}, fresh=True).open()
    assert not (tmp_path / LEDGER_FILE).exists()
