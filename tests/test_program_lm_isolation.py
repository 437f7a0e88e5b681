"""A program file carries prompts and demos, never an LM: DSPy's loader would restore a predictor's saved `lm`
(provider, model, key), so a shared or downloaded program could switch the paid model behind `--lm`."""

import json

import dspy
import pytest

from sage_dspy.lm.roles import RoleLMs
from sage_dspy.offline import http as offline_http
from sage_dspy.programs import load_recipe
from sage_dspy.runs.program import PROGRAM_FILE, ProgramMismatchError, load_compiled_prompts
from sage_dspy.search.tool import SearchTool
from server_fixture import in_process_server
from tests.cli_helpers import assert_one_line_error, invoke

HOSTILE_KEY = "sk-hostile-program-key-never-used"


def recipe_program(index):
    return load_recipe("sage").build(SearchTool(index, k=3), k=2, max_rounds=1, lms=RoleLMs())


def program_folder(folder, index, lm_state: dict | None = None, **changes):
    """A compiled-looking program folder; `lm_state` is put on every predictor, `changes` on the generator's."""
    program = recipe_program(index).freeze_search_agent()
    folder.mkdir()
    program.save(str(folder / PROGRAM_FILE))
    state = json.loads((folder / PROGRAM_FILE).read_text())
    for name, predictor in state.items():
        if name != "metadata" and lm_state is not None:
            predictor["lm"] = lm_state
    state["generator.propose.react"].update(changes)
    (folder / PROGRAM_FILE).write_text(json.dumps(state))
    (folder / "config.json").write_text(json.dumps({"recipe": "sage"}))
    return folder


def test_a_program_files_lm_is_never_loaded(tmp_path, tiny_index):
    other = dspy.LM("openai/other-model", api_key=HOSTILE_KEY).dump_state()
    folder = program_folder(tmp_path / "program", tiny_index, {**other, "api_key": HOSTILE_KEY},
                            forward="not a method", temperature=2.0)
    program = recipe_program(tiny_index).freeze_search_agent()
    with pytest.warns(UserWarning, match="LM .* ignored"):
        load_compiled_prompts(program, folder / PROGRAM_FILE)
    for name, predictor in program.named_predictors():
        assert predictor.lm is None, name
        assert callable(predictor.forward) and not hasattr(predictor, "temperature"), name


@pytest.mark.parametrize("spoil, expected", [
    ({"signature": {"instructions": ["a", "list"], "fields": []}}, "instructions that are not text"),
    ({"signature": "text"}, "has no signature"),
    ({"signature": {"instructions": "ok", "fields": [{"prefix": 3}]}}, "fields"),
    ({"demos": "many"}, "demos that are not a list"),
])
def test_a_prompt_of_the_wrong_type_is_refused_before_the_run(tmp_path, tiny_index, spoil, expected):
    folder = program_folder(tmp_path / "program", tiny_index, **spoil)
    with pytest.raises(ProgramMismatchError, match=expected):
        load_compiled_prompts(recipe_program(tiny_index).freeze_search_agent(), folder / PROGRAM_FILE)


def test_the_cli_refuses_a_wrongly_typed_prompt_in_one_line(workdir, tiny_corpus_file, tiny_index):
    folder = program_folder(workdir / "program", tiny_index,
                            signature={"instructions": 42, "fields": []})
    result = invoke("generate", "--no-track", "--program", folder, "--corpus", tiny_corpus_file, "--seeds", "1",
                    "--out", workdir / "run")
    assert_one_line_error(result, "instructions that are not text")
    assert not (workdir / "run").exists()


def test_a_program_naming_another_server_sends_it_nothing(workdir, tiny_corpus_file, tiny_index, monkeypatch):
    """Two loopback servers: `--lm` points at the first; the program file's LM at the second (its model, its key,
    and the endpoint the environment gives `openai/` models). The second gets no request at all."""
    config = offline_http.ServerConfig(idle_exit=120)
    with in_process_server(config) as chosen, in_process_server(config) as other:
        other_base = f"http://127.0.0.1:{other.server_address[1]}/v1"
        monkeypatch.setenv("OPENAI_BASE_URL", other_base)
        monkeypatch.setenv("OPENAI_API_BASE", other_base)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
        lm_state = {**dspy.LM("openai/other-model").dump_state(), "api_key": HOSTILE_KEY}
        folder = program_folder(workdir / "program", tiny_index, lm_state)
        result = invoke("generate", "--no-track", "--program", folder, "--corpus", tiny_corpus_file,
                        "--seeds", "1", "--k", "2", "--rounds", "1", "--targets", "2-3",
                        "--lm", "openai/sage-offline", "--api-base",
                        f"http://127.0.0.1:{chosen.server_address[1]}/v1", "--lm-seed", "0",
                        "--out", workdir / "run")
        assert result.exit_code == 0, result.output
        assert other.stats.requests == 0
        assert chosen.stats.completions > 3
    records = [json.loads(line) for line in (workdir / "run" / "records.jsonl").read_text().splitlines()]
    assert records and all(set(record["lms"].values()) == {"openai/sage-offline"} for record in records)
    assert HOSTILE_KEY not in (workdir / "run" / "records.jsonl").read_text()
