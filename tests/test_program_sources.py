"""A compiled program loads the same from every place `sage compile` leaves it: folder, run, model, prompt."""

import copy
import json
import pickle

import pytest
from typer.testing import CliRunner

from sage_dspy.cli.app import app
from sage_dspy.tracking.sources import ProgramSourceError, resolve_program
from sage_dspy.search.tool import SearchTool

ENV = {"COLUMNS": "200"}


def predictor_states(folder) -> dict:
    """Instructions and demos of every compiled predictor in a program folder."""
    state = json.loads((folder / "program.json").read_text())
    return {name: (value["signature"]["instructions"], value["demos"])
            for name, value in state.items() if name != "metadata"}


@pytest.fixture
def compiled(workdir, isolated_mlflow):
    """One tracked compile (GEPA, small) in a fresh working folder with its own MLflow store: version 1 of every
    prompt is the uncompiled baseline, version 2 of the extractor's the one GEPA changed."""
    import mlflow

    result = CliRunner().invoke(app, ["compile", "--optimizer", "gepa", "--budget", "12", "--train-size", "5",
                                      "--val-size", "3", "--seed", "2", "--rounds", "0"], env=ENV)
    assert result.exit_code == 0, result.output
    run = mlflow.search_runs(experiment_names=["sage-dspy"], filter_string="tags.command = 'compile'",
                             output_format="list")[0]
    folder = next((workdir / "artifacts" / "programs").iterdir())
    return folder, run


def test_every_source_yields_the_compiled_prompts(compiled):
    folder, run = compiled
    expected = predictor_states(folder)
    assert set(expected) == {"generator.propose.react", "generator.propose.extract.predict",
                             "next_pair.harden.predict", "next_pair.repair.predict"}  # search agent frozen
    sources = [str(folder), f"runs:/{run.info.run_id}/program", run.data.tags["model_uri"],
               "prompts:/sage.generator.propose.extract.predict/2"]
    for source in sources:
        assert predictor_states(resolve_program(source)) == expected, source


def test_generate_runs_a_program_from_a_registered_prompt(compiled, tiny_corpus_file):
    result = CliRunner().invoke(app, ["generate", "--program", "prompts:/sage.generator.propose.extract.predict/2",
                                      "--corpus", str(tiny_corpus_file), "--seeds", "2", "--no-track",
                                      "--out", "out"], env=ENV)
    assert result.exit_code == 0, result.output
    assert len((tiny_corpus_file.parent / "out" / "records.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("source", ["prompts:/sage.nope/1", "runs:/0123456789abcdef/program", "no/such/folder"])
def test_unknown_sources_are_one_line_errors(compiled, source):
    with pytest.raises(ProgramSourceError) as error:
        resolve_program(source)
    assert "\n" not in str(error.value)


def test_the_search_tool_pickles_without_its_index_and_deep_copies_by_sharing(tiny_index):
    tool = SearchTool(tiny_index, k=2)
    assert copy.deepcopy(tool) is tool  # optimizers copy programs; every copy searches the same index
    restored = pickle.loads(pickle.dumps(tool))
    assert restored.index is None and restored.k == 2
    assert len(pickle.dumps(tool)) < 2_000  # a logged program never carries the corpus
    with pytest.raises(RuntimeError, match="without its index"):
        restored("anything")
