"""One output record per seed: what was asked, what came out, and the evidence for the verdict; and the two
shorter views of it, the slim one a run keeps in memory and the dataset row of a kept pair."""

from collections import Counter

from sage_dspy.method.feedback import drop_reason, is_void, question_key
from sage_dspy.search.passages import failure_kind


def _attempt_dict(attempt) -> dict:
    return {
        "answer": attempt.answer,
        "searches": attempt.searches,
        "correct": attempt.correct,
        "judged_by": attempt.judged_by,
        "error": attempt.error or "",
        "error_kind": attempt.error_kind,
        "failed_in": attempt.failed_in,  # "solver" or "judge" when it failed
        "raw_reply": attempt.raw_reply,
        "void": is_void(attempt),  # failed at the infrastructure: no search, no answer, not in Avg@K
        "raw_replies": list(attempt.raw_replies),
        "steps": [step.to_dict() for step in attempt.steps],
    }


def _round_dict(past) -> dict:
    """A round; a void one (no verdict: an attempt failed at the infrastructure) says "void" and no figures."""
    verdict = past.verdict
    return {
        "round": past.index,
        "origin": past.pair.origin,
        "question": past.pair.question,
        "answer": past.pair.answer,
        "answering_steps": past.pair.steps,
        "reasoning": past.pair.reasoning,
        "generator_steps": [step.to_dict() for step in past.pair.trajectory],
        "verdict": verdict.kind if verdict else "void",
        "correct": verdict.correct if verdict else False,
        "searches": verdict.searches if verdict and verdict.searches is not None else -1,
        "avg_at_k": verdict.avg_at_k if verdict else 0.0,
        "attempts": [_attempt_dict(a) for a in past.attempts],
    }


def record_for(task, prediction, lm_ids: dict[str, str], error: str = "", error_kind: str = "",
               failed_in: str = "", raw_reply: str = "", raw_replies: list[str] = (), rounds=()) -> dict:
    """Flat, fixed-schema record (so `datasets.load_dataset("json", ...)` reads every line alike): a seed that
    failed has its message, its kind, the role whose call failed and, for a reply that could not be parsed,
    that reply (and in `raw_replies` every one its parse retries got); all "" (and []) otherwise. `rounds`: a
    failed seed's rounds so far (a void round last)."""
    record = {
        "seed_id": task.passage.id,
        "seed_title": task.passage.title,
        "target": task.target,
        "answer_type": task.answer_type,  # replaced by the type the final answer actually has
        "requested_answer_type": task.answer_type,
        "question": "",
        "answer": "",
        "searches": -1,  # -1: no correct attempt, so no measured difficulty
        "correct": False,
        "pass_at_k": 0.0,
        "avg_at_k": 0.0,
        "accepted": False,
        "rounds_used": len(rounds),
        "supporting_ids": [],
        "rounds": [_round_dict(r) for r in rounds],
        "lms": lm_ids,
        "error": error,
        "error_kind": error_kind,
        "failed_in": failed_in,
        "raw_reply": raw_reply,
        "raw_replies": list(raw_replies),
        "kept": False,
        "drop_reason": "error" if error else "",
        "grounding": {},  # accepted pairs: the retrieved passage stating the answer (feedback.Grounding)
    }
    if prediction is None:
        return record
    verdict, pair = prediction.verdict, prediction.pair
    grounding = getattr(prediction, "grounding", None)
    record.update(
        question=pair.question,
        answer=pair.answer,
        answer_type=pair.answer_type,
        searches=verdict.searches if verdict.searches is not None else -1,
        correct=verdict.correct,
        pass_at_k=1.0 if verdict.correct else 0.0,
        avg_at_k=verdict.avg_at_k,
        accepted=verdict.accepted,
        rounds_used=len(prediction.rounds),
        supporting_ids=pair.cited_ids or [task.passage.id],
        rounds=[_round_dict(r) for r in prediction.rounds],
        drop_reason=drop_reason(verdict, grounding) or "",
        grounding=grounding.to_dict() if grounding else {},
    )
    return record


def mark_kept(records: list[dict], seen: set[str] | None = None) -> None:
    """Keep accepted pairs with at least two searches, first of each duplicate question only. `seen` carries
    the questions already kept from one call to the next (a run decided a record at a time)."""
    seen = set() if seen is None else seen
    for record in records:
        if record["error"] or record["drop_reason"]:
            record["kept"] = False
            continue
        key = question_key(record["question"])
        if key in seen:
            record.update(kept=False, drop_reason="duplicate question")
            continue
        seen.add(key)
        record["kept"] = True


def slim_record(record: dict) -> dict:
    """What the end of a run reads from a record (dedupe, summary, usage, budget): everything but the rounds'
    transcripts, of which the summary reads only the attempts' errors and the failed searches, counted by
    kind (`failures_by_kind`)."""
    rounds = [{"attempts": [{key: a[key] for key in ("error", "error_kind", "failed_in") if key in a}
                            for a in past.get("attempts", []) if a.get("error")]}
              for past in record.get("rounds", [])]
    return {**record, "rounds": rounds, "search_failures": search_failures(record)}


def search_failures(record: dict) -> dict[str, int]:
    """{kind: searches} the retriever failed, over the generator's and every attempt's steps."""
    if "search_failures" in record:  # already slim
        return record["search_failures"]
    steps = [step for past in record.get("rounds", []) for step in past.get("generator_steps", [])]
    steps += [step for past in record.get("rounds", []) for a in past.get("attempts", []) for step in a.get("steps", [])]
    return dict(Counter(kind for step in steps if (kind := failure_kind(step.get("observation", "")))))


def dataset_row(record: dict) -> dict:
    """The kept pair alone, as a training or evaluation example."""
    keys = ("question", "answer", "answer_type", "target", "searches", "supporting_ids", "seed_id", "lms")
    return {key: record[key] for key in keys}


# The fields every reader walks into: a hand-edited line with another type there would crash far from its cause.
LIST_FIELDS = ("rounds", "supporting_ids")


def shape_problem(record: dict, *, resumable: bool = True) -> str:
    """What makes `record` not a seed's record, or "": the fields every reader relies on, by type; and for a
    run to resume (`resumable`), the seed id and target that say which seed it is."""
    if resumable and (not isinstance(record.get("seed_id"), str) or "target" not in record):
        return "is not a seed's record (no seed_id or target)"
    for name in LIST_FIELDS:
        if name in record and not isinstance(record[name], list):
            return f"has {name} of type {type(record[name]).__name__}, not a list"
    if not all(isinstance(past, dict) and isinstance(past.get("attempts", []), list) for past in record.get("rounds", [])):
        return "has rounds that are not objects with a list of attempts"
    return ""
