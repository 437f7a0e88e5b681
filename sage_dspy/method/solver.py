"""Solver: the reference search agent. It sees only the question; K distinct rollouts make the attempts."""

import dspy

from sage_dspy.method.failures import SOLVER, error_kind, error_message, raw_replies, raw_reply
from sage_dspy.method.feedback import Attempt
from sage_dspy.lm.react import ReAct
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.signatures import AnswerWithSearch
from sage_dspy.method.trajectory import search_count, steps_of

MAX_SOLVER_TURNS = 10


def rollout_lm(lm: dspy.LM, index: int) -> dspy.LM:
    """A copy of `lm` for attempt `index`: its own cache entry (rollout_id), so K attempts are K samples.

    An LM configured with a `seed` gets seed + index, which makes sampled attempts distinct yet reproducible
    (the offline LM reads it; OpenAI-compatible servers honour it)."""
    overrides = {"rollout_id": index}
    if lm.kwargs.get("seed") is not None:
        overrides["seed"] = int(lm.kwargs["seed"]) + index
    if not lm.kwargs.get("temperature"):
        overrides["temperature"] = 1.0  # rollout_id is ignored at temperature 0, and the paper samples at 1.0
    return lm.copy(**overrides)


class Solver(dspy.Module):
    def __init__(self, search: SearchTool, max_turns: int = MAX_SOLVER_TURNS):
        super().__init__()
        self.answer = ReAct(AnswerWithSearch, tools=[search], max_iters=max_turns)

    def forward(self, question: str):
        return self.answer(question=question)

    def attempt(self, question: str, k: int, first_rollout: int = 0) -> list[Attempt]:
        """K attempts at the question, one after another; a failed attempt is recorded, never raised."""
        return [self.attempt_one(question, index) for index in range(first_rollout, first_rollout + k)]

    def attempt_one(self, question: str, index: int) -> Attempt:
        """Rollout `index` at the question (its own LM sample); a failure is recorded with its reason."""
        if not question.strip():
            return Attempt("", 0, False, error="empty question", error_kind="EmptyQuestion", failed_in=SOLVER)
        try:
            with dspy.context(lm=rollout_lm(dspy.settings.lm, index)):
                result = self(question=question)
        except Exception as error:  # an LM or parse failure costs this attempt, not the run
            return Attempt("", 0, False, error=error_message(error), error_kind=error_kind(error), failed_in=SOLVER,
                           raw_reply=raw_reply(error), raw_replies=tuple(raw_replies(error)))
        steps = steps_of(result.trajectory)
        return Attempt(str(result.answer).strip(), search_count(steps), False, steps)
