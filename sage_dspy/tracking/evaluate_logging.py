"""What an `evaluate` leaves in MLflow: a parent run (the shared settings, every recipe's row per round
count as steps, the report and its plots) with one nested run per recipe (its own settings and folder, its
metrics by round as steps, its per-round and pairs tables, the generate run it read)."""

import json
from dataclasses import replace
from pathlib import Path

from sage_dspy.runs.folder import TRACKING_FILE
from sage_dspy.tracking.run_logging import corpus_label, run_name
from sage_dspy.tracking.runs import TrackedRun, tracked_run
from sage_dspy.tracking.tables import PAIRS_TABLE, ROUNDS_TABLE, pairs_rows, round_rows

ROW_METRICS = ("correct_pct", "accepted_pct", "avg_at_k", "mean_searches", "kept")
SHARED_UNSET = ("recipe", "out_dir", "program")  # each recipe's own: in its child run, not the parent's


def _generate_run_id(folder: Path) -> str:
    try:
        return json.loads((folder / TRACKING_FILE).read_text(encoding="utf-8")).get("run_id", "")
    except (OSError, ValueError):
        return ""


def _log_recipe(base_config, recipe: str, result: dict) -> None:
    config = replace(base_config, recipe=recipe, out_dir=Path(result["folder"]))
    tags = {"command": "evaluate", "recipe": recipe, "reused": str(result["reused"]).lower()}
    if source := _generate_run_id(Path(result["folder"])):
        tags["generate_run_id"] = source
    with tracked_run(run_name("evaluate", corpus_label(config.corpus), recipe), params=config.to_dict(),
                     tags=tags, nested=True) as child:
        for rounds, summary in result["by_round"].items():
            child.log_metrics({f"all.{key}": summary["overall"][key] for key in ROW_METRICS}, step=rounds)
        child.log_table(round_rows(result["by_round"]), ROUNDS_TABLE)
        child.log_table(pairs_rows(result["records"]), PAIRS_TABLE)


def log_evaluate(base_config, results: dict[str, dict], folder: Path) -> str | None:
    """The parent run and its children; returns the parent's id (None when tracking failed to start)."""
    shared = {key: value for key, value in base_config.to_dict().items() if key not in SHARED_UNSET}
    name = run_name("evaluate", corpus_label(base_config.corpus), f"seed{base_config.random_seed}",
                    f"{base_config.seeds}seeds", f"r{base_config.rounds}")
    params = {**shared, "recipes": ",".join(results), "report_dir": str(folder)}
    with tracked_run(name, params=params, tags={"command": "evaluate", "recipes": ",".join(results)}) as run:
        _log_parent(run, results, folder)
        for recipe, result in results.items():
            _log_recipe(base_config, recipe, result)
        return run.run_id


def _log_parent(run: TrackedRun, results: dict[str, dict], folder: Path) -> None:
    for recipe, result in results.items():
        for rounds, summary in result["by_round"].items():
            run.log_metrics({f"{recipe}.{key}": summary["overall"][key] for key in ROW_METRICS}, step=rounds)
    for path in sorted(folder.iterdir()):
        run.log_artifact(path, artifact_path="report")
