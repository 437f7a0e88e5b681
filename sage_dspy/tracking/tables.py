"""What a run logs as MLflow tables and datasets, so the UI shows rows rather than dozens of scalars: the pairs
(question, answer, target S, searches, verdict, kept), the paper's table per target and per round, and the
corpus and the kept pairs as the run's input and output datasets."""

from __future__ import annotations

import warnings
from pathlib import Path

from sage_dspy.search.corpus import BUNDLED_CORPUS
from sage_dspy.tracking.runs import TrackedRun, rounded
from sage_dspy.tracking.store import warn_failed

PAIRS_TABLE = "tables/pairs.json"
TARGETS_TABLE = "tables/per_target.json"
ROUNDS_TABLE = "tables/per_round.json"
TABLE_COLUMNS = ("seeds", "correct_pct", "accepted_pct", "avg_at_k", "mean_searches", "kept", "failed")


def verdict_of(record: dict) -> str:
    """One word for how a seed ended: accepted, or why it was dropped (the last round's verdict otherwise)."""
    if record.get("error"):
        return f"error: {record.get('error_kind') or 'failed'}"
    if record.get("accepted") and not record.get("drop_reason"):
        return "accepted"
    rounds = record.get("rounds") or [{}]
    return record.get("drop_reason") or rounds[-1].get("verdict", "") or "rejected"


def pairs_rows(records: list[dict]) -> list[dict]:
    """Every seed's final pair: kept ones first, in seed order within each group."""
    rows = [{"question": r.get("question", ""), "answer": r.get("answer", ""), "target": r["target"],
             "searches": r["searches"], "verdict": verdict_of(r), "kept": bool(r.get("kept")),
             "answer_type": r.get("answer_type", ""), "rounds_used": r.get("rounds_used", 0),
             "seed_id": r.get("seed_id", "")} for r in records]  # the UI shows the first columns first
    return sorted(rows, key=lambda row: not row["kept"])


def summary_row(label: dict, row: dict) -> dict:
    return {**label, **{key: rounded(float(row[key])) for key in TABLE_COLUMNS}}


def target_rows(summary: dict) -> list[dict]:
    """The paper's table, one row per target S and one for all."""
    rows = [summary_row({"target": f"S={t}"}, row) for t, row in summary["per_target"].items()]
    return rows + [summary_row({"target": "all"}, summary["overall"])]


def round_rows(by_round: dict[int, dict]) -> list[dict]:
    """One row per round count and target (evaluate's view of a run after 0..R rounds)."""
    return [summary_row({"rounds": rounds, "target": target}, row)
            for rounds, summary in by_round.items()
            for target, row in [*summary["per_target"].items(), ("all", summary["overall"])]]


def log_run_tables(run: TrackedRun, records: list[dict], summary: dict) -> None:
    run.log_table(pairs_rows(records), PAIRS_TABLE)
    run.log_table(target_rows(summary), TARGETS_TABLE)


def corpus_dataset(source: str, passages: int, fingerprint: str):
    """The corpus as a metadata-only dataset (its source and fingerprint; the passages stay where they are)."""
    from mlflow.data.meta_dataset import MetaDataset

    return MetaDataset(_source(source), name=f"corpus:{Path(source.rstrip('/')).name or source}",
                       digest=fingerprint[:36] or None)


def pairs_dataset(path: Path, rows: list[dict]):
    """The kept pairs (dataset.jsonl) as a pandas dataset: its schema, row count and digest in the UI."""
    import mlflow.data
    import pandas

    frame = pandas.DataFrame(rows, columns=list(rows[0]) if rows else ["question", "answer"])
    frame = frame.map(lambda value: value if isinstance(value, (str, int, float, bool)) else str(value))
    return mlflow.data.from_pandas(frame, source=_source(str(path)), name=path.name)


def _source(location: str):
    """A file or folder as a local source (its absolute path), anything else as a Hugging Face dataset name."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    if location == "bundled":
        location = str(BUNDLED_CORPUS)
    if Path(location).exists():
        return resolve_dataset_source(Path(location).resolve().as_uri())
    return HuggingFaceDatasetSource(path=location)


def log_datasets(run: TrackedRun, corpus: dict, dataset_path: Path, kept_rows: list[dict]) -> None:
    """The corpus as the run's input ("corpus") and its kept pairs as its output ("output")."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's hints on integer columns and local paths, for developers
            inputs = [(corpus_dataset(corpus["source"], corpus["passages"], corpus["fingerprint"])._to_mlflow_entity(),
                       "corpus", {"passages": corpus["passages"]}),
                      (pairs_dataset(dataset_path, kept_rows)._to_mlflow_entity(), "output", {"pairs": len(kept_rows)})]
    except Exception as exc:  # a dataset that cannot be described is a warning, as every tracking failure
        return warn_failed("describe the run's datasets", exc)
    for entity, context, tags in inputs:
        run.log_dataset(entity, context, tags)
