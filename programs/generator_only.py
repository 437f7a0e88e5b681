"""Baseline: the generator alone. One round: its pair is verified but never revised."""

from sage_dspy.method.generator import Generator
from sage_dspy.method.judge import AnswerJudge
from sage_dspy.method.loop import SageLoop
from sage_dspy.method.solver import Solver

DESCRIPTION = "generator alone, verified once, no feedback (paper baseline)"


def build(search, *, k=4, max_rounds=3, lms=None) -> SageLoop:
    return SageLoop(Generator(search), Solver(search), AnswerJudge(), None, k=k, max_rounds=0, lms=lms)
