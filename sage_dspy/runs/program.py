"""The program a run executes: a recipe built over the corpus's search tool, with a compiled folder's prompts
in place of the recipe's own when one is given."""

import json
import warnings
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.programs import load_recipe
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.search.tool import Searcher, SearchTool

PROGRAM_FILE = "program.json"  # a compiled program folder's DSPy state


class ProgramMismatchError(SageError, ValueError):
    pass


def build_program(config: GenerateConfig, index: Searcher, lms: RoleLMs, program_folder: Path | None = None,
                  parallel_attempts: bool = False):
    """The recipe's program over this corpus; a compiled folder's prompts replace the defaults."""
    recipe = load_recipe(config.recipe)
    program = recipe.build(SearchTool(index, k=config.search_k), k=config.k, max_rounds=config.rounds, lms=lms)
    program.checking(config.protocol, parallel_attempts)
    if program_folder is not None:
        load_compiled_prompts(program.freeze_search_agent(), Path(program_folder) / PROGRAM_FILE)
    return program


def load_compiled_prompts(program, state_file: Path) -> None:
    """Load a compiled state's prompts and demos (generator and reviser; the search agent is frozen), and nothing
    else: DSPy's own loader would also restore an LM a predictor was saved with (provider, model, key), so a shared
    or downloaded program could switch the paid model behind `--lm`. A program needing prompts the state lacks is
    refused; prompts it has no place for (a sage reviser loaded into a baseline recipe) are ignored with a
    warning, so a compiled generator can run under any recipe."""
    state = _read_state(state_file)
    prompts_of = compiled_prompts(state_file, state)
    needed = {name for name, _ in program.named_predictors()}
    missing, unused = needed - set(state), set(state) - needed - {"metadata"}
    if missing:
        raise ProgramMismatchError(
            f"{state_file.parent} was compiled for another program recipe (no prompts for {sorted(missing)}); "
            "pass --recipe with the recipe it was compiled from (see its config.json)")
    if unused:
        warnings.warn(f"this recipe has no place for the compiled prompts {sorted(unused)}; they are ignored",
                      stacklevel=2)
    prompts = {name: prompts_of[name] for name in sorted(needed)}
    ignored = sorted(name for name in needed if state[name].get("lm"))
    if ignored:
        warnings.warn(f"{state_file} names an LM for {ignored}; it is ignored: a run's LMs come from --lm and its "
                      "config, never from a program file", stacklevel=2)
    try:
        program.load_state(prompts)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as error:  # DSPy's load_state on odd shapes
        raise ProgramMismatchError(f"{state_file} is not a compiled program's state ({type(error).__name__}: "
                                   f"{error}); re-run `sage compile` to write it again") from None
    assert all(predictor.lm is None for _, predictor in program.named_predictors()), "a program file set an LM"


def compiled_prompts(state_file: Path, state: dict | None = None) -> dict[str, dict]:
    """Every predictor's prompts in a compiled state, checked: what `generate` reads before it creates a run
    folder, so a broken program file is refused before any work."""
    state = _read_state(state_file) if state is None else state
    return {name: prompts_only(saved, name, state_file) for name, saved in state.items() if name != "metadata"}


def prompts_only(saved: dict, name: str, state_file: Path) -> dict:
    """A predictor's saved state cut to what a compile changes: its instructions, field prefixes and
    descriptions, and demos. Everything else DSPy would restore (`lm`, and any other key, which its loader sets
    as an attribute) is left out; a prompt of the wrong type is one line, not a run whose every seed fails."""
    signature = saved.get("signature")
    demos = saved.get("demos", [])
    fields = signature.get("fields", []) if isinstance(signature, dict) else None
    problem = (
        "has no signature" if not isinstance(signature, dict)
        else "has instructions that are not text" if not isinstance(signature.get("instructions"), str)
        else "has fields that are not a list of {prefix, description} texts"
        if not isinstance(fields, list) or not all(
            isinstance(f, dict) and isinstance(f.get("prefix"), str) and isinstance(f.get("description"), str)
            for f in fields)
        else "has demos that are not a list of objects"
        if not isinstance(demos, list) or not all(isinstance(demo, dict) for demo in demos)
        else None)
    if problem:
        raise ProgramMismatchError(f"{state_file}: the prompt of {name!r} {problem}; re-run `sage compile` to "
                                   "write it again, or restore the file from the compile run")
    clean_fields = [{"prefix": f["prefix"], "description": f["description"]} for f in fields]
    return {"signature": {"instructions": signature["instructions"], "fields": clean_fields}, "demos": demos,
            "traces": [], "train": [], "lm": None}


def _read_state(state_file: Path) -> dict:
    """The saved state, or one line saying why it is not one: truncated, not UTF-8, or not a JSON object."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProgramMismatchError(f"{state_file} is not valid JSON ({error}); it may be truncated: re-run "
                                   "`sage compile` to write it again") from None
    if not isinstance(state, dict) or not all(isinstance(value, dict) for value in state.values()):
        raise ProgramMismatchError(f"{state_file} is not a compiled program's state (a JSON object of predictor "
                                   "states); re-run `sage compile` to write it again")
    return state
