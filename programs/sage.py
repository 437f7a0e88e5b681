"""SAGE: the generator's pair is revised from the search agent's execution feedback, round after round."""

from sage_dspy.method.generator import Generator
from sage_dspy.method.judge import AnswerJudge
from sage_dspy.method.loop import SageLoop
from sage_dspy.method.reviser import Reviser
from sage_dspy.method.solver import Solver

DESCRIPTION = "generator + search-agent feedback + reviser (the paper's method)"


def build(search, *, k=4, max_rounds=3, lms=None) -> SageLoop:
    return SageLoop(Generator(search), Solver(search), AnswerJudge(), Reviser(), k=k, max_rounds=max_rounds,
                    lms=lms)
