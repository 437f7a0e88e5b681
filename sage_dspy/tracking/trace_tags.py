"""Each seed's trace told apart after the run: whether its pair was kept (or why it was dropped) and what its LM
calls cost in tokens, as trace tags, so the Traces tab can be filtered to the kept or the dropped seeds.

A trace is matched to its record by the seed the program was called with (its root span's inputs: passage
id, target searches, answer type), the key records are written under."""

from sage_dspy.runs.folder import seed_key, record_key
from sage_dspy.tracking.store import warn_failed


def outcome(record: dict) -> str:
    """"kept", "dropped: <reason>" or "failed: <error kind>"."""
    if record.get("error"):
        return f"failed: {record.get('error_kind') or 'error'}"
    return "kept" if record.get("kept") else f"dropped: {record.get('drop_reason') or 'not accepted'}"


def trace_tags(record: dict) -> dict[str, str]:
    return {"sage.outcome": outcome(record), "sage.seed_id": str(record["seed_id"]),
            "sage.target": str(record["target"]), "sage.tokens.prompt": str(record.get("prompt_tokens", 0)),
            "sage.tokens.completion": str(record.get("completion_tokens", 0)),
            "sage.lm_calls": str(record.get("lm_calls", 0))}


def tag_seed_traces(run_id: str, experiment_id: str, records: list[dict]) -> int:
    """Tag the traces of `run_id` with their seed's outcome and tokens; returns how many were tagged."""
    import mlflow
    from mlflow import MlflowClient

    by_key = {record_key(record): record for record in records}
    tagged, client = 0, MlflowClient()
    try:
        mlflow.flush_trace_async_logging()
        for trace in mlflow.search_traces(locations=[experiment_id], run_id=run_id, return_type="list"):
            inputs = trace.data.spans[0].inputs if trace.data.spans else {}
            seed = (inputs or {}).get("seed") or {}
            record = by_key.get(seed_key(seed.get("id", ""), inputs.get("target_searches"), inputs.get("answer_type")))
            if record is None:
                continue
            for key, value in trace_tags(record).items():
                client.set_trace_tag(trace.info.trace_id, key, value)
            tagged += 1
    except Exception as exc:
        warn_failed("tag the seeds' traces", exc)
    return tagged
