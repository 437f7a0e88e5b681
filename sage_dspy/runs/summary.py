"""The numbers of the paper's intrinsic table (% correct, % accepted, Avg@K, mean searches; overall and per
target), LM use and cost, failures by kind. The terminal tables are drawn by cli/printing.py."""

from collections import Counter, defaultdict

from sage_dspy.lm.roles import ALL_ROLES
from sage_dspy.lm.pricing import Price, usage_cost
from sage_dspy.method.failures import JUDGE, kind_of_entry


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
            "failures": failures_by_kind(records), "dropped": dropped_by_reason(records)}


def dropped_by_reason(records: list[dict]) -> dict[str, int]:
    """{drop reason: pairs}, most frequent first; failed seeds are counted under failures instead."""
    reasons = Counter(r["drop_reason"] for r in records
                      if not r.get("kept") and not r.get("error") and r.get("drop_reason"))
    return dict(reasons.most_common())


def models_of(records: list[dict]) -> set[str]:
    """Every model the records' LM calls went to."""
    return {row["model"] for record in records for row in record.get("lm_usage", [])}


def usage_summary(records: list[dict], prices: dict[str, Price | None]) -> dict:
    """LM calls, tokens and cost in USD per role, in total and per accepted pair. A cost is given only where
    every model behind it has a price; `unpriced` names the models that have none."""
    by_role = defaultdict(list)
    for record in records:
        for row in record.get("lm_usage", []):
            by_role[row["role"]].append(row)
    order = sorted(by_role, key=lambda role: (ALL_ROLES.index(role) if role in ALL_ROLES else len(ALL_ROLES), role))
    roles = {role: _usage_row(by_role[role], prices) for role in order}
    total = _usage_row([row for rows in by_role.values() for row in rows], prices)
    del total["models"]
    accepted = sum(r["accepted"] for r in records)
    per_accepted = {"lm_calls": None, "tokens": None, "cost_usd": None}
    if accepted:
        per_accepted = {"lm_calls": total["lm_calls"] / accepted,
                        "tokens": (total["prompt_tokens"] + total["completion_tokens"]) / accepted,
                        "cost_usd": None if total["cost_usd"] is None else total["cost_usd"] / accepted}
    used = sorted(models_of(records))
    return {"roles": roles, "total": total, "accepted": accepted, "per_accepted": per_accepted,
            "prices": {model: prices[model].to_dict() if prices.get(model) else None for model in used},
            "unpriced": [model for model in used if prices.get(model) is None]}


def _usage_row(rows: list[dict], prices: dict[str, Price | None]) -> dict:
    return {"models": sorted({row["model"] for row in rows}),
            "lm_calls": sum(row["lm_calls"] for row in rows),
            "prompt_tokens": sum(row["prompt_tokens"] for row in rows),
            "completion_tokens": sum(row["completion_tokens"] for row in rows),
            "cost_usd": usage_cost(rows, prices)}


def _label(entry: dict) -> str:
    """A failure's line in the counts: its kind, and for the judge's, whose it was (`failed_in`)."""
    kind, failed_in = kind_of_entry(entry)
    return f"judge failed: {kind}" if failed_in == JUDGE else kind


def failures_by_kind(records: list[dict]) -> dict[str, dict[str, int]]:
    """Failed seeds and failed attempts, counted by error kind, so a run's faults are visible at a glance; the
    replies each role's adapter could not parse (`parse_failures`, retried ones included); and failed searches
    (the retriever's faults, which the agent read as observations), by kind."""
    seeds, attempts, parses, searches = Counter(), Counter(), Counter(), Counter()
    for record in records:
        searches.update(record.get("search_failures", {}))
        if record.get("error"):
            seeds[_label(record)] += 1
        for past in record.get("rounds", []):
            for attempt in past.get("attempts", []):
                if attempt.get("error"):
                    attempts[_label(attempt)] += 1
        for row in record.get("lm_usage", []):
            if row.get("parse_failures"):
                parses[row["role"]] += row["parse_failures"]
    return {"seeds": dict(seeds), "attempts": dict(attempts), "parse_failures": dict(parses),
            "searches": dict(searches)}
