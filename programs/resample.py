"""Baseline: resampling. Each failed round draws a fresh pair from the generator, with no feedback."""

from sage_dspy.method.generator import Generator
from sage_dspy.method.judge import AnswerJudge
from sage_dspy.method.loop import SageLoop
from sage_dspy.method.reviser import Resampler
from sage_dspy.method.solver import Solver

DESCRIPTION = "a fresh generator sample each round, no feedback (paper baseline)"


def build(search, *, k=4, max_rounds=3, lms=None) -> SageLoop:
    generator = Generator(search)
    return SageLoop(generator, Solver(search), AnswerJudge(), Resampler(generator), k=k,
                    max_rounds=max_rounds, lms=lms)
