"""Programs logged to MLflow before the package was split into subpackages still load."""

import importlib
import sys
from pathlib import Path

import pytest

import sage_dspy  # noqa: F401  (first: offline environment defaults, old module names)
from sage_dspy.legacy import OLD_TO_NEW
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.method.loop import SageLoop
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.program import build_program, PROGRAM_FILE
from sage_dspy.search.corpus import load_corpus
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.tool import SearchTool
from sage_dspy.tracking.programs import load_program

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_program_v0_1"


def test_a_program_logged_by_0_1_0_loads_as_todays_classes():
    program = load_program(str(FIXTURE))
    assert type(program) is SageLoop  # the same class object, not a copy under the old name
    assert isinstance(program.generator.propose.tools["search"].func, SearchTool)
    assert program.generator.propose.react.signature.instructions == "LEGACY FIXTURE INSTRUCTION"
    assert [name for name, _ in program.named_predictors()] == [
        "generator.propose.react", "generator.propose.extract.predict", "solver.answer.react",
        "solver.answer.extract.predict", "judge.decide", "next_pair.harden.predict", "next_pair.repair.predict"]


def test_its_prompts_load_into_a_program_built_today(tmp_path):
    # what `--program models:/...` does: the logged program's DSPy state, loaded into a fresh program
    load_program(str(FIXTURE)).save(str(tmp_path / PROGRAM_FILE))
    passages = load_corpus("bundled")[:12]
    index = SearchIndex.open(passages, root=tmp_path / "indexes")
    with pytest.warns(UserWarning, match="no place for the compiled prompts"):  # the frozen search agent's
        program = build_program(GenerateConfig(corpus="bundled"), index, RoleLMs.from_specs({}), program_folder=tmp_path)
    assert program.generator.propose.react.signature.instructions == "LEGACY FIXTURE INSTRUCTION"
    assert program.generator.propose.tools["search"].func("Kingdom")  # and it searches today's index


def test_the_fixture_really_names_the_old_modules():
    # the control: without this the test above could pass on a fixture saved by today's code
    pickled = (FIXTURE / "data" / "model" / "program.pkl").read_bytes()
    assert b"sage_dspy.loop" in pickled and b"sage_dspy.retrieval" in pickled
    assert b"sage_dspy.method" not in pickled


@pytest.mark.parametrize("old", sorted(OLD_TO_NEW))
def test_every_old_name_still_offers_what_it_defined(old):
    module, parts = importlib.import_module(old), [importlib.import_module(new) for new in OLD_TO_NEW[old]]
    if len(parts) == 1:
        assert module is parts[0]
    else:  # split: every public name of every part, as the same object
        for part in parts:
            assert all(getattr(module, name) is value for name, value in vars(part).items() if name[0] != "_")


def test_a_split_module_offers_its_old_classes():
    import sage_dspy.corpus as old_corpus
    import sage_dspy.retrieval as old_retrieval
    from sage_dspy.search.passages import Passage

    assert old_retrieval.SearchTool is SearchTool and old_retrieval.SearchIndex is SearchIndex
    assert old_retrieval.Passage is Passage and old_corpus.Passage is Passage


def test_old_names_are_exact_never_prefixes():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sage_dspy.loopy")
    assert "sage_dspy.loop" not in {m.__name__ for m in sys.modules.values() if hasattr(m, "__name__")}
