"""Issue #25 end to end on a real sqlite store, read back through MLflow's own API: the baseline is version 1,
a compile that changes nothing registers nothing, a generate run from `prompts:/.../2` is linked to that version
(and the version lists it), and `evaluate --programs baseline,<compiled>` runs both on the same seeds as a parent
with one child per program, its paired comparison in the terminal, the report and an MLflow table."""

import json
import tempfile
import time
from pathlib import Path

import sage_dspy  # noqa: F401  (offline env defaults first)

import dspy
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow_store import reset_mlflow_globals
from typer.testing import CliRunner

from sage_dspy.cli.app import app
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.evaluate_logging import COMPARISON_TABLE
from sage_dspy.tracking.tables import PAIRS_TABLE

PROMPTS = ("sage.generator.propose.react", "sage.generator.propose.extract.predict", "sage.next_pair.harden.predict",
           "sage.next_pair.repair.predict")
CHANGED = "sage.generator.propose.extract.predict"  # the prompt this GEPA compile rewrites
COMPILED = f"prompts:/{CHANGED}/2"
SMALL = ("--k", 2, "--rounds", 1)


def sage(*args, columns=200):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result


def version_counts() -> dict[str, int]:
    return {name: len(MlflowClient().search_prompt_versions(name)) for name in PROMPTS}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A GEPA compile that changes the extractor's prompt (offline: ~20 s), in a fresh folder and store, with a
    system temp folder of its own (the machine's is shared with other processes)."""
    folder = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:
        reset_mlflow_globals(mp)
        mp.chdir(folder)
        (folder / "tmp").mkdir()
        mp.setattr(tempfile, "tempdir", str(folder / "tmp"))
        temp_before = set(Path(tempfile.gettempdir()).iterdir())
        sage("compile", "--optimizer", "gepa", "--budget", 12, "--train-size", 5, "--val-size", 3, "--seed", 2,
             "--rounds", 0)
        callbacks = list(dspy.settings.config.get("callbacks") or [])
        try:
            yield folder, temp_before
        finally:
            tracking.autolog_dspy(enabled=False)  # a --traces generate turned DSPy's autolog on
            dspy.configure(callbacks=callbacks)
            while mlflow.active_run():
                mlflow.end_run()


def runs_of(command: str):
    experiment = MlflowClient().get_experiment_by_name("sage-dspy")
    return MlflowClient().search_runs([experiment.experiment_id], filter_string=f"tags.command = '{command}'",
                                      order_by=["attributes.start_time ASC"])


def linked(run) -> set[tuple[str, int]]:
    return {(entry["name"], int(entry["version"])) for entry in json.loads(run.data.tags["mlflow.linkedPrompts"])}


def runs_listed_by_version(name: str, version: int) -> list[str]:
    """The runs a prompt version lists: those whose MLflow prompt link names it."""
    experiment = MlflowClient().get_experiment_by_name("sage-dspy")
    wanted = json.dumps({"name": name, "version": str(version)})
    return [run.info.run_id for run in MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.linkedPrompts` LIKE '%{wanted}%'")]


def test_the_baseline_is_version_1_and_the_compile_registers_only_what_it_changed(store):
    client = MlflowClient()
    for name in PROMPTS:
        baseline = client.get_prompt_version(name, 1)
        assert baseline.tags["baseline"] == "true" and baseline.tags["optimizer"] == "none (uncompiled)"
    assert version_counts() == {name: 2 if name == CHANGED else 1 for name in PROMPTS}
    compiled = client.get_prompt_version(CHANGED, 2)
    (compile_run,) = runs_of("compile")
    assert compiled.tags["run_id"] == compile_run.info.run_id and compiled.tags["changed"] == "instructions"
    assert compiled.tags["val.comparable"] == compile_run.data.tags["val.comparable"]  # scores' settings travel
    # version tags stay on their version: the prompt's own (its page header) holds none of them
    assert not {"baseline", "run_id", "optimizer"} & set(client.get_prompt(CHANGED).tags)
    # the compile ran the changed extractor and the baseline of the others
    assert linked(compile_run) == {(name, 2 if name == CHANGED else 1) for name in PROMPTS}


def test_a_compile_logs_each_candidates_score_as_steps_and_spans_the_compile(store):
    folder, _ = store
    (compile_run,) = runs_of("compile")[:1]
    history = MlflowClient().get_metric_history(compile_run.info.run_id, "val.candidate")
    scores = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert len(scores) >= 2 and scores[0] == compile_run.data.metrics["val.before"]  # GEPA's first: the student
    assert max(scores) == compile_run.data.metrics["val.after"]
    # the run starts when the compile did, before its program folder (named by the second it was made) existed
    (program,) = [p for p in (folder / "artifacts/programs").iterdir() if p.name.startswith("sage-gepa-")]
    made = time.mktime(time.strptime(program.name.removeprefix("sage-gepa-")[:15], "%Y%m%d-%H%M%S"))
    assert compile_run.info.start_time / 1000 <= made + 1
    # dated back, it still has the tags MLflow gives every run it starts (who, from what)
    assert {"mlflow.user", "mlflow.source.name", "mlflow.source.type"} <= set(compile_run.data.tags)


def test_a_compile_that_changes_nothing_registers_nothing(store):
    before = version_counts()
    sage("compile", "--optimizer", "bootstrap", "--budget", 2, "--train-size", 3, "--val-size", 2, "--rounds", 1)
    assert version_counts() == before
    assert runs_of("compile")[-1].data.tags["prompts.changed"] == "none"


def test_a_generate_run_from_a_prompt_version_is_linked_to_it_and_listed_by_it(store):
    folder, temp_before = store
    sage("generate", "--program", COMPILED, "--seeds", 2, *SMALL, "--out", "artifacts/runs/from-v2")
    (run,) = runs_of("generate")
    assert (CHANGED, 2) in linked(run) and (CHANGED, 1) not in linked(run)
    assert run.info.run_id in runs_listed_by_version(CHANGED, 2)
    # the Prompts page lists a version's runs from its mlflow.prompt.run_ids tag
    assert run.info.run_id in MlflowClient().get_prompt_version(CHANGED, 2).tags["mlflow.prompt.run_ids"].split(",")
    assert run.info.run_id not in MlflowClient().get_prompt_version(CHANGED, 1).tags.get("mlflow.prompt.run_ids", "")
    assert run.info.run_name == "generate-sage-bundled-r1-generator.propose.extract.predict@v2"
    (compile_run,) = [r for r in runs_of("compile") if r.data.params["optimizer"] == "gepa"]
    assert run.data.tags["program.source"] == COMPILED
    assert run.data.tags["program.compile_run_id"] == compile_run.info.run_id
    # fetched into the project, not the system temp folder
    assert (folder / "artifacts/programs/from-mlflow").is_dir()
    assert set(Path(tempfile.gettempdir()).iterdir()) == temp_before


def test_a_generate_run_without_a_program_is_linked_to_the_baseline(store):
    sage("generate", "--seeds", 2, *SMALL, "--traces", "--out", "artifacts/runs/baseline")
    run = runs_of("generate")[-1]
    assert linked(run) == {(name, 1) for name in PROMPTS}
    assert run.data.tags["program.label"] == "baseline"


def test_each_seeds_trace_says_whether_its_pair_was_kept_and_what_it_cost(store):
    folder, _ = store
    run = runs_of("generate")[-1]  # the traced baseline run
    records = {r["seed_id"]: r for r in map(json.loads, (folder / "artifacts/runs/baseline/records.jsonl")
                                             .read_text().splitlines())}
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id, return_type="list")
    assert len(traces) == len(records) == 2
    for trace in traces:
        record = records[trace.info.tags["sage.seed_id"]]
        assert trace.info.tags["sage.outcome"] == ("kept" if record["kept"] else f"dropped: {record['drop_reason']}")
        assert trace.info.tags["sage.tokens.prompt"] == str(record["prompt_tokens"])
        assert trace.info.tags["sage.lm_calls"] == str(record["lm_calls"])
        usage = trace.info.token_usage or {}  # MLflow's own field, what the Traces tab shows
        assert usage.get("input_tokens") == record["prompt_tokens"] > 0, usage
        assert usage.get("output_tokens") == record["completion_tokens"] > 0, usage


def test_re_running_a_finished_generate_logs_no_second_run(store):
    folder, _ = store
    note = folder / "artifacts/runs/from-v2/mlflow.json"
    before, runs = note.read_text(), len(runs_of("generate"))
    again = sage("generate", "--program", COMPILED, "--seeds", 2, *SMALL, "--out", "artifacts/runs/from-v2")
    assert "logged before" in again.stderr
    assert len(runs_of("generate")) == runs and note.read_text() == before


def test_evaluate_programs_runs_each_on_the_same_seeds_and_compares_them_paired(store):
    folder, _ = store
    result = sage("evaluate", "--programs", f"baseline,{COMPILED}", "--seeds", 6, *SMALL)
    assert "paired comparison on the same seeds" in result.stdout
    verdict = next(line for line in result.stdout.splitlines() if line.startswith("generator.propose.extract"))
    assert "95% CI" in verdict
    (parent,) = [r for r in runs_of("evaluate") if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["program"]: r for r in runs_of("evaluate")
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"baseline", "generator.propose.extract.predict@v2"}
    seeds = {label: sorted(mlflow.load_table(PAIRS_TABLE, run_ids=[run.info.run_id])["seed_id"])
             for label, run in children.items()}
    assert len(seeds["baseline"]) == 6 and seeds["baseline"] == seeds["generator.propose.extract.predict@v2"]
    assert (CHANGED, 2) in linked(children["generator.propose.extract.predict@v2"])
    assert linked(children["baseline"]) == {(name, 1) for name in PROMPTS}
    table = mlflow.load_table(COMPARISON_TABLE, run_ids=[parent.info.run_id])
    assert list(table["metric"]) == ["% accepted", "% correct", "mean searches", "LM calls per kept pair"]
    assert set(table["seeds"]) == {6} and set(table["A"]) == {"baseline"}
    report = next((folder / "artifacts/evaluations").glob("bundled-6seeds-seed0-*/report.md")).read_text()
    assert "Paired comparison on the same seeds" in report and verdict.split(": ", 1)[1] in report
    assert parent.data.params["programs"] == f"baseline,generator.propose.extract.predict@v2"


def test_evaluate_with_other_seeds_gets_its_own_folders_and_the_same_settings_resume(store):
    folder, _ = store
    runs = folder / "artifacts/runs"
    before = set(runs.iterdir())
    sage("evaluate", "--programs", f"baseline,{COMPILED}", "--seeds", 4, *SMALL)
    assert len(set(runs.iterdir()) - before) == 2  # no collision with the 6-seed runs: two new folders
    again = sage("evaluate", "--programs", f"baseline,{COMPILED}", "--seeds", 4, *SMALL)
    assert again.stderr.count("reused an earlier run") == 2


@pytest.mark.parametrize("columns", [80, 200])
def test_runs_list_shows_each_run_with_its_program_and_kept_pairs_within_the_width(store, columns):
    output = sage("runs", "list", columns=columns).stdout
    assert max(len(line) for line in output.splitlines()) <= columns
    (child,) = [r for r in runs_of("evaluate") if r.data.tags.get("program") == "baseline"][:1]
    line = next(line for line in output.splitlines() if line.strip().startswith(child.info.run_id[:8]))
    assert "baseline" in line and f"{child.data.metrics['all.kept']:g}" in line.split()


def test_a_wider_terminal_never_shows_less_of_a_program(store):
    """The program column took what was left after a flat 24 characters for the name, however short the names:
    at some widths it was cut shorter than in a narrower terminal."""
    def program_cells(columns: int) -> list[str]:
        lines = sage("runs", "list", columns=columns).stdout.splitlines()
        header = next(line for line in lines if " program " in line)
        start = header.index(" program ") + 1
        end = header.index(next(name for name in header[start:].split() if name != "program"), start + 8)
        return [line[start:end].strip() for line in lines[lines.index(header) + 2:] if line.strip()]

    shown = {columns: program_cells(columns) for columns in (100, 120, 140, 160, 200)}
    widest = shown[200]
    assert widest and not any(cell.endswith("…") for cell in widest), widest
    for columns, cells in shown.items():  # each cell as the widest terminal shows it, or cut the least
        assert all(cell == full or cell.endswith("…") for cell, full in zip(cells, widest)), (columns, cells)
    cut = [sum(cell.endswith("…") for cell in shown[columns]) for columns in (100, 120, 140, 160, 200)]
    assert cut == sorted(cut, reverse=True), cut


def test_runs_compare_takes_the_printed_ids_and_shows_an_evaluate_runs_children(store):
    (parent,) = [r for r in runs_of("evaluate") if "mlflow.parentRunId" not in r.data.tags][:1]
    output = sage("runs", "compare", parent.info.run_id[:8], columns=200).stdout
    children = [r for r in runs_of("evaluate") if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert all(child.info.run_id[:8] in output for child in children)
    program_row = next(line for line in output.splitlines() if line.strip().startswith("program"))
    assert "baseline" in program_row and "@v2" in program_row
    assert "all.accepted_pct" in output


def test_runs_compare_refuses_an_unknown_id_in_one_line(store):
    result = CliRunner().invoke(app, ["runs", "compare", "zzzzzzzz"], env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "matches no run" in result.stderr and "Traceback" not in result.output


def test_prompts_list_puts_scores_side_by_side_only_under_the_same_settings(store):
    output = sage("prompts", "list").stdout
    titles = [line.strip() for line in output.splitlines() if line.startswith(f"{CHANGED}:")]
    assert titles[0].startswith(f"{CHANGED}: unscored") and titles[1].startswith(f"{CHANGED}: scored on 3 validation")


def test_the_readme_snippet_runs_as_written(store):
    """README's "Reading the store from Python": every line, executed as written in the project folder."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    after = readme.split("<!-- tested: tests/test_compare_programs.py -->", 1)[1]
    code = after.split("```python\n", 1)[1].split("```", 1)[0]
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["pairs"]) == 2 and len(scope["traces"]) == 2  # the traced 2-seed generate, one trace a seed
    assert list(scope["comparison"]["metric"])[0] == "% accepted"
