"""What a user finds in MLflow after `generate --traces`, two `compile`s and `evaluate`, read back through
MLflow's own API from a real sqlite store (one store for the module: the commands take ~30 s together), and
`runs compare` / `prompts list` at 80 and 200 columns."""

import json
from pathlib import Path

import sage_dspy  # noqa: F401  (offline env defaults first)

import dspy
import mlflow
import pytest
from mlflow_store import reset_mlflow_globals
from mlflow import MlflowClient
from typer.testing import CliRunner

from sage_dspy.cli.app import app
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.tables import PAIRS_TABLE, ROUNDS_TABLE, TARGETS_TABLE

RECIPES = ("resample", "sage")


def sage(*args, columns=200):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The commands a new user runs, in a fresh folder; {name: CliRunner result} and the experiment."""
    folder = tmp_path_factory.mktemp("views")
    with pytest.MonkeyPatch.context() as mp:
        reset_mlflow_globals(mp)
        mp.chdir(folder)
        callbacks = list(dspy.settings.config.get("callbacks") or [])
        try:
            results = {
                "generate": sage("generate", "--seeds", 3, "--k", 2, "--rounds", 1, "--traces", "--workers", 2,
                                 "--out", "artifacts/runs/traced"),
                "compile": sage("compile", "--optimizer", "bootstrap", "--budget", 2, "--train-size", 3,
                                "--val-size", 2, "--rounds", 1, "--eval-seeds", 2),
                "compile-again": sage("compile", "--optimizer", "bootstrap", "--budget", 2, "--train-size", 3,
                                      "--val-size", 2, "--rounds", 0, "--eval-seeds", 2, "--seed", 1),
                "evaluate": sage("evaluate", "--seeds", 2, "--k", 2, "--rounds", 1, "--recipes", ",".join(RECIPES)),
            }
        finally:
            tracking.autolog_dspy(enabled=False)
            dspy.configure(callbacks=callbacks)
        experiment = MlflowClient().get_experiment_by_name("sage-dspy")
        yield results, experiment, folder
        while mlflow.active_run():
            mlflow.end_run()


def runs_of(experiment, command):
    return MlflowClient().search_runs([experiment.experiment_id], filter_string=f"tags.command = '{command}'",
                                      order_by=["attributes.start_time ASC"])


def test_a_traced_generate_run_finds_its_traces_by_run_id(store):
    _, experiment, folder = store
    (run,) = runs_of(experiment, "generate")
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(locations=[experiment.experiment_id], run_id=run.info.run_id, return_type="list")
    assert len(traces) == 3  # one per seed, from two worker threads
    assert {t.info.trace_metadata["mlflow.sourceRun"] for t in traces} == {run.info.run_id}
    assert run.info.run_name == "generate-sage-bundled-r1"
    assert json.loads((folder / "artifacts/runs/traced/mlflow.json").read_text()) == {"run_id": run.info.run_id}


def test_generate_logs_the_pairs_and_the_table_as_mlflow_tables_and_its_datasets(store):
    _, experiment, folder = store
    (run,) = runs_of(experiment, "generate")
    pairs = mlflow.load_table(PAIRS_TABLE, run_ids=[run.info.run_id])
    records = [json.loads(line) for line in (folder / "artifacts/runs/traced/records.jsonl").read_text().splitlines()]
    assert len(pairs) == len(records) == 3
    assert {"question", "answer", "target", "searches", "verdict", "kept"} <= set(pairs.columns)
    assert sorted(pairs["question"]) == sorted(r["question"] for r in records)
    assert set(pairs[pairs["kept"]]["verdict"]) <= {"accepted"}
    targets = mlflow.load_table(TARGETS_TABLE, run_ids=[run.info.run_id])
    assert list(targets["target"])[-1] == "all" and all(t.startswith("S=") for t in list(targets["target"])[:-1])
    # whole-run numbers are metrics, rounded; the per-target rows are in the table, not 68 scalars
    metrics = run.data.metrics
    assert "all.accepted_pct" in metrics and not [k for k in metrics if k.startswith("S")]
    assert all(value == round(value, 2) for key, value in metrics.items() if key.endswith("_pct"))
    inputs = {tag.value: d.dataset for d in run.inputs.dataset_inputs for tag in d.tags
              if tag.key == "mlflow.data.context"}
    assert set(inputs) == {"corpus", "output"}
    assert inputs["corpus"].name == "corpus:bundled" and json.loads(inputs["output"].profile)["num_rows"] == \
        sum(r["kept"] for r in records)


def test_compile_runs_link_their_prompts_and_log_comparable_scores(store):
    results, experiment, _ = store
    first, second = runs_of(experiment, "compile")
    assert first.info.run_name != second.info.run_name  # rounds and seed differ, and the names say so
    for run in (first, second):
        metrics = run.data.metrics
        assert metrics["val.gain"] == pytest.approx(metrics["val.after"] - metrics["val.before"], abs=0.02)
        assert metrics["heldout.seeds"] == 2 and "heldout.after" in metrics
        assert run.data.tags["val.settings"].startswith("2 validation seeds")
        linked = json.loads(run.data.tags["mlflow.linkedPrompts"])
        assert len(linked) == 4 and all(p["name"].startswith("sage.") for p in linked)
    assert first.data.tags["val.comparable"] != second.data.tags["val.comparable"]  # other seeds, other rounds
    assert "held-out (2)" in results["compile"].stdout and "gain" in results["compile"].stdout
    assert "Average Metric" not in results["compile"].output  # DSPy's progress: in compile.log, not on the terminal
    assert "Average Metric" in (Path(results["compile"].stdout.split("library log: ")[1].split()[0])).read_text()
    assert "thresholds the metric" in results["compile"].stdout


def test_evaluate_is_a_parent_run_with_one_child_per_recipe(store):
    _, experiment, folder = store
    runs = runs_of(experiment, "evaluate")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    (parent,) = parents
    children = {run.data.tags["recipe"]: run for run in runs if run.data.tags.get("mlflow.parentRunId") ==
                parent.info.run_id}
    assert set(children) == set(RECIPES) and len(runs) == 3
    assert "recipe" not in parent.data.params and parent.data.params["recipes"] == ",".join(RECIPES)
    client = MlflowClient()
    for recipe, child in children.items():
        assert child.data.params["recipe"] == recipe
        assert Path(child.data.params["out_dir"]).name.startswith(f"bundled-{recipe}-2seeds-seed0-")  # where it ran
        history = client.get_metric_history(child.info.run_id, "all.accepted_pct")
        assert sorted(m.step for m in history) == [0, 1]  # one step per round count
        table = mlflow.load_table(ROUNDS_TABLE, run_ids=[child.info.run_id])
        assert set(table["rounds"]) == {0, 1}
    (report_folder,) = (folder / "artifacts/evaluations").glob("bundled-2seeds-seed0-*")
    report = (report_folder / "report.md").read_text()
    assert "| recipe | target |" in report and "| recipe | rounds |" in report
    html = (report_folder / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2 and "<table>" in html


@pytest.mark.parametrize("columns", [80, 200])
def test_runs_compare_reads_well_at_80_and_200_columns(store, columns):
    output = sage("runs", "compare", "--last", 6, columns=columns).stdout
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in output  # nothing cut off
    assert "val.gain" in output and "all.accepted_pct" in output and "heldout.after" in output
    _, experiment, _ = store
    newest = MlflowClient().search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                        max_results=6)
    ids = {run.info.run_id[:8] for run in newest}
    headers = [line.split() for line in lines if line.split() and set(line.split()) <= ids]
    assert sorted(run for header in headers for run in header) == sorted(ids)  # every run a column, once
    assert (columns == 80) == (len(headers) > 1)  # 80 columns: split into tables; 200: one table


@pytest.mark.parametrize("columns", [80, 200])
def test_prompts_list_reads_well_at_80_and_200_columns(store, columns):
    output = sage("prompts", "list", columns=columns).stdout
    assert max(len(line) for line in output.splitlines()) <= columns
    assert "…" not in output
    for heading in ("optimizer", "date", "changed", "before", "after"):
        assert heading in output
    # the two small bootstrap compiles change no prompt: every prompt has its uncompiled baseline only
    assert output.count("sage.") >= 4 and "none (uncompiled)" in output and "first" in output
