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
    """Load a compiled state (generator and reviser prompts; the search agent is frozen). A program needing
    prompts the state lacks is refused; prompts it has no place for (a sage reviser loaded into a baseline
    recipe) are ignored with a warning, so a compiled generator can run under any recipe."""
    state = _read_state(state_file)
    needed = {name for name, _ in program.named_predictors()}
    missing, unused = needed - set(state), set(state) - needed - {"metadata"}
    if missing:
        raise ProgramMismatchError(
            f"{state_file.parent} was compiled for another program recipe (no prompts for {sorted(missing)}); "
            "pass --recipe with the recipe it was compiled from (see its config.json)")
    if unused:
        warnings.warn(f"this recipe has no place for the compiled prompts {sorted(unused)}; they are ignored",
                      stacklevel=2)
    try:
        program.load(str(state_file))
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as error:  # DSPy's load_state on odd shapes
        raise ProgramMismatchError(f"{state_file} is not a compiled program's state ({type(error).__name__}: "
                                   f"{error}); re-run `sage compile` to write it again") from None


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
