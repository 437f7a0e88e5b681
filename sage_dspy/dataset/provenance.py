"""What every exported row says about where its pair came from, and the answers it accepts."""

from sage_dspy.answers import normalize_answer
from sage_dspy.dataset.pairs import Run
from sage_dspy.runs.folder import record_key


def pair_id(pair: dict) -> str:
    """Stable across exports: the run's folder name and the seed's key (passage, target, answer type)."""
    return f"{pair['source_run']}:{record_key(pair)}"


def gold_answers(pair: dict) -> list[str]:
    """The gold answer first, then every other wording of it that the judge accepted from the search agent in
    the kept round ("3400" for "3,400"), one per normalised form: an exact-match reward then credits them too."""
    answers, seen = [pair["answer"]], {normalize_answer(pair["answer"])}
    for attempt in pair["rounds"][-1]["attempts"] if pair.get("rounds") else []:
        key = normalize_answer(attempt["answer"])
        if attempt["correct"] and not attempt.get("error") and key and key not in seen:
            seen.add(key)
            answers.append(attempt["answer"].strip())
    return answers


def provenance(pair: dict, run: Run) -> dict:
    """SAGE's evidence for the pair: seed, target S, achieved searches, pass@K, Avg@K, supporting passages,
    rounds used, the LM of each role, and the run (folder name and MLflow run id, "" if untracked)."""
    return {
        "pair_id": pair_id(pair),
        "seed_id": pair["seed_id"],
        "target_searches": pair["target"],
        "searches": pair["searches"],
        "pass_at_k": pair["pass_at_k"],
        "avg_at_k": pair["avg_at_k"],
        "k": int(run.settings.get("k", 0)),
        "supporting_ids": list(pair["supporting_ids"]),
        "rounds_used": pair["rounds_used"],
        "answer_type": pair["answer_type"],
        "lms": dict(pair["lms"]),
        "run": run.name,
        "mlflow_run_id": run.mlflow_run_id,
    }
