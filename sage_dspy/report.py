"""The paper's intrinsic table: % correct, % accepted, Avg@K and mean searches, overall and per target."""

from collections import Counter, defaultdict

from rich.table import Table


def _row(records: list[dict]) -> dict:
    done = [r for r in records if not r["error"]]
    correct = [r for r in done if r["correct"]]
    count = len(done)
    return {
        "seeds": len(records),
        "failed": len(records) - count,
        "correct_pct": 100.0 * len(correct) / count if count else 0.0,
        "accepted_pct": 100.0 * sum(r["accepted"] for r in done) / count if count else 0.0,
        "avg_at_k": sum(r["avg_at_k"] for r in done) / count if count else 0.0,
        # difficulty of a correct pair: the fewest searches among its correct attempts
        "mean_searches": sum(r["searches"] for r in correct) / len(correct) if correct else 0.0,
        "kept": sum(r.get("kept", False) for r in records),
        # what an accepted pair cost: every call of the run, failed seeds included, over the accepted pairs
        "lm_calls_per_accepted": _per_accepted(records, "lm_calls"),
        "tokens_per_accepted": _per_accepted(records, "prompt_tokens") + _per_accepted(records, "completion_tokens"),
    }


def _per_accepted(records: list[dict], key: str) -> float:
    accepted = sum(r["accepted"] for r in records)
    return sum(r.get(key, 0) for r in records) / accepted if accepted else 0.0


def summarize(records: list[dict]) -> dict:
    by_target = defaultdict(list)
    for record in records:
        by_target[record["target"]].append(record)
    return {"overall": _row(records), "per_target": {str(t): _row(by_target[t]) for t in sorted(by_target)},
            "failures": failures_by_kind(records)}


def _kind(error: str) -> str:
    """'LMRateLimitError: ...' -> 'LMRateLimitError'; 'judge failed: X: ...' -> 'judge failed: X'."""
    parts = error.split(":")
    return ":".join(parts[:2]).strip() if error.startswith("judge failed") else parts[0].strip()


def failures_by_kind(records: list[dict]) -> dict[str, dict[str, int]]:
    """Failed seeds and failed attempts, counted by error kind, so a run's faults are visible at a glance."""
    seeds, attempts = Counter(), Counter()
    for record in records:
        if record.get("error"):
            seeds[_kind(record["error"])] += 1
        for past in record.get("rounds", []):
            for attempt in past.get("attempts", []):
                if attempt.get("error"):
                    attempts[_kind(attempt["error"])] += 1
    return {"seeds": dict(seeds), "attempts": dict(attempts)}


def summary_table(summary: dict, title: str = "SAGE intrinsic evaluation") -> Table:
    table = Table(title=title)
    for column in ("target", "seeds", "% correct", "% accepted", "Avg@K", "mean searches", "kept", "failed"):
        table.add_column(column, justify="right")
    rows = [*((f"S={t}", row) for t, row in summary["per_target"].items()), ("all", summary["overall"])]
    for label, row in rows:
        table.add_row(label, str(row["seeds"]), f"{row['correct_pct']:.1f}", f"{row['accepted_pct']:.1f}",
                      f"{row['avg_at_k']:.2f}", f"{row['mean_searches']:.2f}", str(row["kept"]), str(row["failed"]))
    return table
