"""SageLoop: generate, solve K times, judge, revise; for up to R rounds. Nothing else lives here."""

from dataclasses import dataclass

import dspy

from sage_dspy.feedback import Attempt, Verdict, verdict_for
from sage_dspy.lms import RoleLMs
from sage_dspy.pair import QAPair
from sage_dspy.retrieval import Passage


@dataclass(frozen=True)
class Round:
    index: int
    pair: QAPair
    attempts: list[Attempt]
    verdict: Verdict


class SageLoop(dspy.Module):
    def __init__(self, generator, solver, judge, next_pair=None, *, k: int = 4, max_rounds: int = 3,
                 lms: RoleLMs | None = None):
        super().__init__()
        self.generator, self.solver, self.judge, self.next_pair = generator, solver, judge, next_pair
        self.k, self.max_rounds = k, max_rounds if next_pair is not None else 0
        self.lms = lms or RoleLMs()

    def freeze_search_agent(self) -> "SageLoop":
        """Mark the solver and judge compiled: DSPy optimizers skip them and saved states leave them out, so
        the search agent stays the fixed reference the paper measures difficulty with."""
        self.solver._compiled = True
        self.judge._compiled = True
        return self

    def forward(self, seed: Passage, target_searches: int, answer_type: str):
        with self.lms.use("generator"):
            pair = self.generator(seed=seed, target_searches=target_searches, answer_type=answer_type).pair
        rounds: list[Round] = []
        for index in range(self.max_rounds + 1):
            with self.lms.use("solver"):
                attempts = self.solver.attempt(pair.question, k=self.k)
            with self.lms.use("judge"):
                attempts = [self.judge.grade(pair.question, pair.answer, a) for a in attempts]
            verdict = verdict_for(attempts, target_searches)
            rounds.append(Round(index, pair, attempts, verdict))
            if verdict.accepted or index == self.max_rounds:
                break
            with self.lms.use(self.next_pair.role):
                pair = self.next_pair(seed=seed, target_searches=target_searches, answer_type=answer_type,
                                      rounds=rounds)
        return dspy.Prediction(pair=pair, verdict=verdict, rounds=rounds)
