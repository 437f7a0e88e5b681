"""`evaluate --programs A,B,...`: every pair of programs compared seed by seed (runs/paired.py's statistics).

A seed counts only where both programs finished it: a seed that failed on either side (an LM or search fault)
is infrastructure, not a verdict, so it is left out of that pair and the count left out is reported.
"""

from itertools import combinations

from sage_dspy.runs.folder import record_key
from sage_dspy.runs.paired import discordant, paired_bootstrap, paired_rate, verdict

# (metric, label, how it reads when B is larger): rates first, the verdict is on the accepted rate
METRICS = (("accepted_pct", "% accepted"), ("correct_pct", "% correct"), ("mean_searches", "mean searches"),
           ("lm_calls_per_kept", "LM calls per kept pair"))


def paired_records(records_a: list[dict], records_b: list[dict]) -> tuple[list[dict], list[dict], int]:
    """The records of the seeds both programs finished, in A's seed order, and how many seeds were left out."""
    by_key = {record_key(r): r for r in records_b}
    pairs = [(r, by_key[record_key(r)]) for r in records_a
             if record_key(r) in by_key and not r["error"] and not by_key[record_key(r)]["error"]]
    left_out = len(set(map(record_key, records_a)) | set(by_key)) - len(pairs)
    return [a for a, _ in pairs], [b for _, b in pairs], left_out


def lm_calls(record: dict) -> int:
    return sum(row.get("lm_calls", 0) for row in record.get("lm_usage", [])) or record.get("lm_calls", 0)


def mean_searches(records) -> float | None:
    """The paper's difficulty: mean fewest searches of a correct attempt, over correct pairs."""
    correct = [r["searches"] for r in records if r["correct"]]
    return sum(correct) / len(correct) if correct else None


def lm_calls_per_kept(records) -> float | None:
    kept = sum(bool(r.get("kept")) for r in records)
    return sum(lm_calls(r) for r in records) / kept if kept else None


def compare_pair(name_a: str, records_a: list[dict], name_b: str, records_b: list[dict]) -> dict:
    """One pair of programs: {"a", "b", "seeds", "left_out", "verdict", "rows": [paired.Difference, ...]}."""
    a, b, left_out = paired_records(records_a, records_b)
    if not a:
        return {"a": name_a, "b": name_b, "seeds": 0, "left_out": left_out, "rows": [],
                "verdict": "no seed finished on both sides: nothing to compare (see the runs' failures)"}
    accepted_a, accepted_b = [r["accepted"] for r in a], [r["accepted"] for r in b]
    accepted = paired_rate(accepted_a, accepted_b, "accepted_pct")
    rows = [accepted, paired_rate([r["correct"] for r in a], [r["correct"] for r in b], "correct_pct"),
            paired_bootstrap(a, b, mean_searches, "mean_searches"),
            paired_bootstrap(a, b, lm_calls_per_kept, "lm_calls_per_kept")]
    return {"a": name_a, "b": name_b, "seeds": len(a), "left_out": left_out,
            "verdict": verdict(name_a, name_b, accepted, *discordant(accepted_a, accepted_b)),
            "rows": [row for row in rows if row is not None]}


def compare_programs(results: dict[str, dict]) -> list[dict]:
    """Every pair (A before B in the order given) of {program: {"records": [...]}}."""
    return [compare_pair(a, results[a]["records"], b, results[b]["records"]) for a, b in combinations(results, 2)]


LABELS = dict(METRICS)
COMPARISON_COLUMNS = ("A", "B", "metric", "A value", "B value", "B - A", "95% CI", "seeds")


def table_rows(comparisons: list[dict]) -> list[dict]:
    """One flat row per pair and metric: what the terminal, the report and the MLflow table show."""
    return [{"A": c["a"], "B": c["b"], "metric": LABELS[row.metric], "A value": _number(row.a),
             "B value": _number(row.b), "B - A": _signed(row.difference),
             "95% CI": f"{_signed(row.low)} to {_signed(row.high)}", "seeds": row.seeds,
             "interval": "Agresti-Min (paired)" if row.metric.endswith("_pct") else "paired bootstrap"}
            for c in comparisons for row in c["rows"]]


def markdown(comparisons: list[dict]) -> str:
    """The comparison as the report (and the parent run's description) shows it: each pair's verdict first, then
    the table, then how the intervals are computed."""
    lines = ["### Paired comparison on the same seeds (B - A, 95% CI)", "",
             *(f"- **{c['b']} vs {c['a']}**: {c['verdict']}" + (
                 f" ({c['left_out']} seed(s) failed on a side and are left out)" if c["left_out"] else "")
               for c in comparisons), "",
             "| " + " | ".join(COMPARISON_COLUMNS) + " |", "|" + "---|" * len(COMPARISON_COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in COMPARISON_COLUMNS) + " |" for row in table_rows(comparisons)]
    lines += ["", INTERVALS_NOTE]
    return "\n".join(lines)


INTERVALS_NOTE = ("Rates: Agresti-Min interval for paired proportions (McNemar's 2x2 of the seeds, half an "
                  "observation added per cell), honest when every seed ties. Mean searches and LM calls per kept "
                  "pair: paired percentile bootstrap over seeds (2000 resamples, fixed seed). \"About N seeds\": a "
                  "McNemar test at 5% with 80% power for 10 points, at the disagreement measured here.")


def _number(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _signed(value: float) -> str:
    return f"{value:+.1f}" if abs(value) >= 10 else f"{value:+.2f}"

