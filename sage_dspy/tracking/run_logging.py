"""What a `generate` run leaves in MLflow: params, the whole-run numbers as metrics, the pairs and the paper's
table as MLflow tables, the corpus and the kept pairs as datasets, the files, one plot; and the traces of a
traced run, which land in it because it is open while the seeds run.

The method stays free of I/O: the run is opened around `generate` and filled in after it. Tracking never stops
a run: every failure inside `sage_dspy.tracking` is a warning.
"""

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

from sage_dspy.runs.folder import TRACKING_FILE, same_finished_run
from sage_dspy.runs.program_names import program_label, slug
from sage_dspy.runs.records import dataset_row
from sage_dspy.tracking.program_links import link_program
from sage_dspy.tracking.runs import TrackedRun, tracked_run
from sage_dspy.tracking.secrets import scrub_secrets
from sage_dspy.tracking.stale_runs import folder_tag
from sage_dspy.tracking.store import TrackingWarning
from sage_dspy.tracking.tables import log_datasets, log_run_tables
from sage_dspy.tracking.trace_tags import tag_seed_traces


def table_metrics(summary: dict) -> dict[str, float]:
    """The whole run's row as metrics (`all.accepted_pct`, ...); the per-target rows go to a table."""
    row = summary["overall"]
    return {f"all.{key}": float(row[key]) for key in (
        "correct_pct", "accepted_pct", "avg_at_k", "mean_searches", "kept", "failed", "seeds",
        "lm_calls_per_accepted", "tokens_per_accepted")}


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


def plot_searches(records: list[dict], path: Path, title: str = "Achieved difficulty against target") -> Path | None:
    """Achieved searches against target for correct pairs, kept ones filled and dropped ones hollow: the
    steering the method promises, at a glance."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    correct = [(i, r) for i, r in enumerate(records) if r["correct"]]
    figure, axes = plt.subplots(figsize=(5.5, 4.2))
    for kept, style in ((True, {"color": "tab:blue"}), (False, {"facecolors": "none", "edgecolors": "tab:red"})):
        shown = [(i, r) for i, r in correct if bool(r.get("kept")) == kept]
        axes.scatter([r["target"] + 0.1 * ((i % 5) - 2) for i, r in shown], [r["searches"] for _, r in shown],
                     alpha=0.7, label=f"{'kept' if kept else 'dropped'} ({len(shown)})", **style)
    top = max([r["target"] for r in records] + [r["searches"] for _, r in correct] + [2])
    axes.plot([1, top], [1, top], linestyle="--", color="grey", label="searches = target")
    axes.set_xlabel("target searches S")
    axes.set_ylabel("fewest searches of a correct attempt")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def run_name(command: str, *parts: object) -> str:
    """What tells this run from its neighbours in the runs list: `generate-sage-world-r3`."""
    return "-".join([command, *(str(part) for part in parts if part not in ("", None))])


def corpus_label(corpus: str) -> str:
    return Path(corpus.rstrip("/")).stem or "corpus"


@contextlib.contextmanager
def generate_run(config, lm_ids: dict[str, str], track: bool = True,
                 program_folder: Path | None = None) -> Iterator[TrackedRun | None]:
    """The MLflow run of one `generate`, open while the seeds run: traces DSPy autolog writes meanwhile, from
    any worker thread, carry its id (`mlflow.sourceRun`) and show on its Traces tab. Its name says which
    program ran (`generate-sage-bundled-r3-generator.propose.react@v2`), its tags the program's source and
    compile run, and the prompt versions it ran are linked to it. None when not tracked."""
    if not track:
        yield None
        return
    name = run_name("generate", config.recipe, corpus_label(config.corpus), f"r{config.rounds}",
                    slug(program_label(config.program)) if config.program else "")
    with tracked_run(name, params={**config.to_dict(), "lms": lm_ids},
                     tags={"command": "generate", "recipe": config.recipe,
                           "corpus": corpus_label(config.corpus), **folder_tag(config.out_dir)}) as run:
        link_program(run, config.program, program_folder, config.recipe)
        yield run


def logged_finished_run(config) -> str:
    """The MLflow run that already logged the finished run in config.out_dir, made with these settings ("" if
    none): re-running it adds no record, so it logs no second identical run and leaves mlflow.json as it is."""
    from mlflow import MlflowClient

    if not same_finished_run(config.out_dir, config.to_dict()):
        return ""
    try:
        run_id = json.loads((config.out_dir / TRACKING_FILE).read_text(encoding="utf-8"))["run_id"]
        return run_id if MlflowClient().get_run(run_id).info.status == "FINISHED" else ""
    except Exception:  # no note, another store, a deleted run: log it anew
        return ""


def log_generate(run: TrackedRun, config, result, traced: bool = False) -> str | None:
    """What a finished `generate` adds to its run: the whole-run metrics, the tables, the datasets, the
    files and the plot; with `traced`, each seed's trace tagged with its outcome and tokens. Returns the
    run's id (None when tracking failed to start)."""
    summary = result.summary
    run.log_metrics({**table_metrics(summary), **usage_metrics(summary.get("usage", {}))})
    if summary.get("usage", {}).get("unpriced"):
        run.set_tags({"unpriced_models": ", ".join(summary["usage"]["unpriced"])})
    records = result.records
    log_run_tables(run, records, summary)
    log_datasets(run, summary.get("corpus") or {"source": config.corpus, "passages": 0, "fingerprint": ""},
                 result.dataset_path, [dataset_row(r) for r in records if r.get("kept")])
    for path in (result.records_path, result.dataset_path, result.records_path.parent / "summary.json"):
        run.log_artifact(path)
    plot = plot_searches(records, result.records_path.parent / "searches_vs_target.png",
                         title=f"{config.recipe} on {corpus_label(config.corpus)}: searches against target")
    if plot:
        run.log_artifact(plot)
    if run.run_id:
        note_run_id(result.records_path.parent / TRACKING_FILE, run.run_id)
        if traced:
            tag_seed_traces(run.run_id, run.experiment_id, records)
    return run.run_id


def note_run_id(path: Path, run_id: str) -> None:
    """Beside a run's records (so an export names the MLflow run its pairs came from), or in a compiled
    program's folder (so a run using the folder names the compile that made it)."""
    try:
        path.write_text(json.dumps({"run_id": run_id}), encoding="utf-8")
    except OSError as error:
        warnings.warn(scrub_secrets(f"sage-dspy tracking: could not note the MLflow run id in {path}: {error}"),
                      TrackingWarning, stacklevel=2)
