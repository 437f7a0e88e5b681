"""What a `generate` run leaves in MLflow: params, the paper's table as metrics, the files, one plot.

Called after the run, from outside the loop, so the method stays free of I/O. Tracking never stops a run:
every failure inside `sage_dspy.tracking` is a warning.
"""

import json
import warnings
from pathlib import Path

from sage_dspy.tracking.programs import log_program
from sage_dspy.tracking.prompts import register_prompts
from sage_dspy.tracking.runs import tracked_run
from sage_dspy.tracking.store import TrackingWarning
from sage_dspy.runs.folder import TRACKING_FILE
from sage_dspy.tracking.secrets import scrub_secrets


def table_metrics(summary: dict) -> dict[str, float]:
    """The summary rows as flat metric names: `all.accepted_pct`, `S3.mean_searches`, ..."""
    metrics = {}
    rows = {"all": summary["overall"], **{f"S{t}": row for t, row in summary["per_target"].items()}}
    for label, row in rows.items():
        for key in ("correct_pct", "accepted_pct", "avg_at_k", "mean_searches", "kept", "failed", "seeds",
                    "lm_calls_per_accepted", "tokens_per_accepted"):
            metrics[f"{label}.{key}"] = float(row[key])
    return metrics


def usage_metrics(usage: dict) -> dict[str, float]:
    """Calls, tokens and USD per role and in total (`usage.solver.prompt_tokens`, `usage.all.cost_usd`, ...), and
    per accepted pair (`usage.per_accepted.cost_usd`); a cost no price is known for is left out, not logged 0."""
    if not usage:
        return {}
    metrics = {}
    for label, row in {**usage["roles"], "all": usage["total"]}.items():
        for key in ("lm_calls", "prompt_tokens", "completion_tokens", "cost_usd"):
            if row.get(key) is not None:
                metrics[f"usage.{label}.{key}"] = float(row[key])
    for key, value in usage["per_accepted"].items():
        if value is not None:
            metrics[f"usage.per_accepted.{key}"] = float(value)
    return metrics


def plot_searches(records: list[dict], path: Path) -> Path | None:
    """Achieved searches against target for correct pairs: the steering the method promises, at a glance."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    correct = [r for r in records if r["correct"]]
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.scatter([r["target"] + 0.1 * ((i % 5) - 2) for i, r in enumerate(correct)],
                 [r["searches"] for r in correct], alpha=0.6, label="correct pairs")
    top = max([r["target"] for r in records] + [r["searches"] for r in correct] + [2])
    axes.plot([1, top], [1, top], linestyle="--", color="grey", label="searches = target")
    axes.set_xlabel("target searches S")
    axes.set_ylabel("fewest searches of a correct attempt")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def log_generate(config, result, lm_ids: dict[str, str]) -> str | None:
    """One MLflow run per `generate`; returns its id (None when tracking failed to start)."""
    params = {**config.to_dict(), "lms": lm_ids}
    with tracked_run(f"generate-{config.recipe}", params=params,
                     tags={"command": "generate", "recipe": config.recipe}) as run:
        run.log_metrics({**table_metrics(result.summary), **usage_metrics(result.summary.get("usage", {}))})
        if result.summary.get("usage", {}).get("unpriced"):
            run.set_tags({"unpriced_models": ", ".join(result.summary["usage"]["unpriced"])})
        for path in (result.records_path, result.dataset_path, result.records_path.parent / "summary.json"):
            run.log_artifact(path)
        plot = plot_searches(result.records, result.records_path.parent / "searches_vs_target.png")
        if plot:
            run.log_artifact(plot)
        if run.run_id:
            _note_run_id(result.records_path.parent / TRACKING_FILE, run.run_id)
        return run.run_id


def _note_run_id(path: Path, run_id: str) -> None:
    """Beside the run's records, so an export names the MLflow run its pairs came from."""
    try:
        path.write_text(json.dumps({"run_id": run_id}), encoding="utf-8")
    except OSError as error:
        warnings.warn(scrub_secrets(f"sage-dspy tracking: could not note the MLflow run id in {path}: {error}"),
                      TrackingWarning, stacklevel=2)


def log_compile(config, result) -> str | None:
    """One MLflow run per `compile`: scores, the compiled folder, and one prompt version per predictor."""
    params = config.to_dict()
    with tracked_run(f"compile-{config.recipe}-{config.optimizer}", params=params,
                     tags={"command": "compile", "optimizer": config.optimizer}) as run:
        run.log_metrics({"val.before": result.before, "val.after": result.after})
        for path in sorted(result.folder.iterdir()):
            run.log_artifact(path, artifact_path="program")
        versions = register_prompts(result.program, prefix="sage", run_id=run.run_id,
                                    metrics={"val.before": result.before, "val.after": result.after})
        run.log_dict(versions, "prompt_versions.json")
        model_uri = log_program(result.program, name="sage-program")
        if model_uri:
            run.set_tags({"model_uri": model_uri})
        return run.run_id


def log_evaluate(base_config, results: dict[str, dict], folder: Path) -> str | None:
    """One MLflow run per `evaluate`: every recipe's row per round count, the report and its plots."""
    params = {**base_config.to_dict(), "recipes": ",".join(results)}
    with tracked_run("evaluate", params=params, tags={"command": "evaluate"}) as run:
        for recipe, result in results.items():
            for rounds, summary in result["by_round"].items():
                row = summary["overall"]
                run.log_metrics({f"{recipe}.{key}": float(row[key]) for key in
                                 ("correct_pct", "accepted_pct", "avg_at_k", "mean_searches")}, step=rounds)
        for path in sorted(folder.iterdir()):
            run.log_artifact(path, artifact_path="report")
        return run.run_id
