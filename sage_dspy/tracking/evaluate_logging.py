"""What an `evaluate` leaves in MLflow: a parent run (the shared settings, every recipe's row per round
count as steps, the report and its plots) with one nested run per recipe (its own settings and folder, its
metrics by round as steps, its per-round and pairs tables, the generate run it read)."""

import json
from dataclasses import replace
from pathlib import Path

from sage_dspy.runs.folder import TRACKING_FILE
from sage_dspy.runs.program_comparison import markdown, table_rows
from sage_dspy.runs.program_names import slug
from sage_dspy.tracking.program_links import link_program
from sage_dspy.tracking.run_logging import corpus_label, run_name
from sage_dspy.tracking.runs import TrackedRun, tracked_run
from sage_dspy.tracking.tables import PAIRS_TABLE, ROUNDS_TABLE, pairs_rows, round_rows

ROW_METRICS = ("correct_pct", "accepted_pct", "avg_at_k", "mean_searches", "kept")
SHARED_UNSET = ("recipe", "out_dir", "program")  # each recipe's own: in its child run, not the parent's
COMPARISON_TABLE = "comparison.json"  # the parent's paired differences, one row per pair of programs and metric


def _generate_run_id(folder: Path) -> str:
    try:
        return json.loads((folder / TRACKING_FILE).read_text(encoding="utf-8")).get("run_id", "")
    except (OSError, ValueError):
        return ""


def _log_recipe(label: str, result: dict) -> None:
    config = replace(result["config"], out_dir=Path(result["folder"]))
    tags = {"command": "evaluate", "recipe": config.recipe, "program": label,
            "reused": str(result["reused"]).lower()}
    if source := _generate_run_id(Path(result["folder"])):
        tags["generate_run_id"] = source
    parts = [config.recipe] + ([slug(label)] if label != config.recipe else [])
    with tracked_run(run_name("evaluate", corpus_label(config.corpus), *parts), params=config.to_dict(),
                     tags=tags, nested=True) as child:
        link_program(child, config.program, result.get("program_folder"), config.recipe)
        for rounds, summary in result["by_round"].items():
            child.log_metrics({f"all.{key}": summary["overall"][key] for key in ROW_METRICS}, step=rounds)
        child.log_table(round_rows(result["by_round"]), ROUNDS_TABLE)
        child.log_table(pairs_rows(result["records"]), PAIRS_TABLE)


def log_evaluate(base_config, results: dict[str, dict], folder: Path, comparisons: list[dict] = ()) -> str | None:
    """The parent run and its children; returns the parent's id (None when tracking failed to start). With
    `--programs`, the parent also holds the paired comparison (an MLflow table, and each pair's verdict as a
    tag, which the runs list can show as a column)."""
    shared = {key: value for key, value in base_config.to_dict().items() if key not in SHARED_UNSET}
    compared = "programs" if comparisons else "recipes"
    name = run_name("evaluate", corpus_label(base_config.corpus),
                    *(["-vs-".join(slug(label) for label in results)] if comparisons else []),
                    f"seed{base_config.random_seed}", f"{base_config.seeds}seeds", f"r{base_config.rounds}")
    params = {**shared, compared: ",".join(results), "report_dir": str(folder)}
    if comparisons:
        params["recipe"] = base_config.recipe
    tags = {"command": "evaluate", compared: ",".join(results),
            **{f"verdict.{slug(c['b'])}_vs_{slug(c['a'])}": c["verdict"] for c in comparisons}}
    with tracked_run(name, params=params, tags=tags) as run:
        _log_parent(run, results, folder)
        if comparisons:
            run.log_table(table_rows(comparisons), COMPARISON_TABLE)
            run.set_tags({"mlflow.note.content": markdown(comparisons)})  # the run page's description
        for label, result in results.items():
            _log_recipe(label, result)
        return run.run_id


def _log_parent(run: TrackedRun, results: dict[str, dict], folder: Path) -> None:
    for recipe, result in results.items():
        for rounds, summary in result["by_round"].items():
            run.log_metrics({f"{recipe}.{key}": summary["overall"][key] for key in ROW_METRICS}, step=rounds)
    for path in sorted(folder.iterdir()):
        run.log_artifact(path, artifact_path="report")
