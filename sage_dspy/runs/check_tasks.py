"""The fixed small tasks `sage check` gives each role, in this program's own formats: the real Generator, Solver,
judge calibration and Reviser modules, over the bundled corpus, with budgets small enough for a minute.

Each task returns what it saw (`TaskResult`): the agents' steps, the judge's calibration, or the reviser's
pair; an exception from the LM service propagates (check.py records it as "not checked", never as a verdict).
"""

from dataclasses import dataclass, field

from dspy.utils.exceptions import AdapterParseError

from sage_dspy.method.calibration import Calibration, calibrate_judge
from sage_dspy.method.failures import error_message
from sage_dspy.method.feedback import Attempt, verdict_for
from sage_dspy.method.generator import Generator
from sage_dspy.method.loop import Round
from sage_dspy.method.pair import QAPair
from sage_dspy.method.reviser import Reviser
from sage_dspy.method.solver import Solver
from sage_dspy.method.trajectory import Step
from sage_dspy.search.tool import SearchTool

SEED_ID = "w001"  # Merrowind Coast: its seat Port Senna has its own passage, with a population
QUESTION = "What was the population of the administrative seat of Merrowind Coast in 2021?"
GOLD, WRONG = "186,400", "42,000"
MAX_STEPS = 4  # search steps a check agent may take: enough to show it can call the tool, short enough for a minute


@dataclass
class TaskResult:
    steps: list[Step] = field(default_factory=list)  # the agents' tool calls
    calibration: Calibration | None = None  # the judge's items
    output_ok: bool | None = None  # the reviser: a non-empty question and answer came back
    parse_error: str = ""  # the task's final reply could not be parsed, after every retry
    service_error: str = ""  # the LM service failed a call the module records rather than raises


def generator_task(search: SearchTool) -> TaskResult:
    seed = search.index.get(SEED_ID)
    return _agent(lambda: Generator(search, max_searches=MAX_STEPS)(seed=seed, target_searches=2,
                                                                       answer_type="number").pair.trajectory)


def solver_task(search: SearchTool) -> TaskResult:
    attempt = Solver(search, max_turns=MAX_STEPS).attempt_one(QUESTION, 0)
    if attempt.error_kind == AdapterParseError.__name__:
        return TaskResult(parse_error=attempt.error)
    return TaskResult(steps=attempt.steps, service_error=attempt.error)  # Solver records failures, never raises


def judge_task(search: SearchTool) -> TaskResult:
    return TaskResult(calibration=calibrate_judge())


def reviser_task(search: SearchTool) -> TaskResult:
    """An incorrect round to repair: the pair's answer is another town's population."""
    seed = search.index.get(SEED_ID)
    pair = QAPair(question=QUESTION, answer=WRONG, answer_type="number",
                  steps=[f"Search Merrowind Coast (id: {SEED_ID})", "Search Port Senna (id: w002)"], origin="generated")
    attempts = [Attempt(GOLD, 2, False)]
    rounds = [Round(0, pair, attempts, verdict_for(attempts, 2))]
    try:
        revised = Reviser()(seed=seed, target_searches=2, answer_type="number", rounds=rounds)
    except AdapterParseError as error:
        return TaskResult(parse_error=error_message(error))
    return TaskResult(output_ok=bool(revised.question and revised.answer))


def _agent(run) -> TaskResult:
    try:
        return TaskResult(steps=run())
    except AdapterParseError as error:
        return TaskResult(parse_error=error_message(error))


TASKS = {"generator": generator_task, "solver": solver_task, "judge": judge_task, "reviser": reviser_task}
