"""SageLoop: generate, solve K times, judge, revise; for up to R rounds. Nothing else lives here."""

from dataclasses import dataclass

import dspy

from sage_dspy.method.attempts import run_attempts
from sage_dspy.method.feedback import (Attempt, Grounding, Verdict, is_service_fault, is_void, round_is_void,
                                      settles_too_easy, verdict_for)
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.method.pair import QAPair
from sage_dspy.method.trajectory import passages_seen
from sage_dspy.search.passages import Passage


@dataclass(frozen=True)
class Protocol:
    """How a pair is checked. The paper runs all K attempts and has the LM judge every answer. `lean` gives
    the same verdict for fewer calls: it stops the attempts once one makes the pair too easy, and an answer
    that matches the gold after normalisation needs no judge call."""

    name: str
    early_stop: bool
    always_lm_judge: bool


PROTOCOLS = {"lean": Protocol("lean", early_stop=True, always_lm_judge=False),
             "paper": Protocol("paper", early_stop=False, always_lm_judge=True)}


@dataclass(frozen=True)
class Round:
    index: int
    pair: QAPair
    attempts: list[Attempt]
    verdict: Verdict | None  # None: the round is void (feedback.round_is_void)


class ServiceUnavailable(RuntimeError):
    """A round is void: an attempt failed at the LM service or the retriever, or none could be judged. The round
    says nothing about the pair; `rounds` (the void one last) go to the seed's record."""

    def __init__(self, message: str, rounds: list[Round] = ()):
        super().__init__(message)
        self.rounds = list(rounds)


class SageLoop(dspy.Module):
    def __init__(self, generator, solver, judge, next_pair=None, *, k: int = 4, max_rounds: int = 3,
                 lms: RoleLMs | None = None, protocol: str = "lean", parallel_attempts: bool = False):
        super().__init__()
        self.generator, self.solver, self.judge, self.next_pair = generator, solver, judge, next_pair
        self.k, self.max_rounds = k, max_rounds if next_pair is not None else 0
        self.lms = lms or RoleLMs()
        self.checking(protocol, parallel_attempts)

    def checking(self, protocol: str, parallel_attempts: bool = False) -> "SageLoop":
        """How pairs are checked (see Protocol); parallel attempts change the time taken, not the records."""
        self.protocol, self.parallel_attempts = PROTOCOLS[protocol], parallel_attempts
        return self

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
            attempts = self.check(pair, target_searches)
            if round_is_void(attempts):
                rounds.append(Round(index, pair, attempts, None))
                raise ServiceUnavailable(f"round {index} is void ({_void_cause(attempts)})", rounds)
            verdict = verdict_for(attempts, target_searches)
            rounds.append(Round(index, pair, attempts, verdict))
            if verdict.accepted or index == self.max_rounds:
                break
            with self.lms.use(self.next_pair.role):
                pair = self.next_pair(seed=seed, target_searches=target_searches, answer_type=answer_type,
                                      rounds=rounds)
        grounding = self.ground(pair, rounds) if verdict.accepted else None
        return dspy.Prediction(pair=pair, verdict=verdict, rounds=rounds, grounding=grounding)

    def ground(self, pair: QAPair, rounds: list[Round]) -> Grounding:
        """Which passage the agents retrieved states the answer (feedback.drop_reason keeps only such pairs)."""
        generator_steps = [step for past in rounds for step in past.pair.trajectory]
        solver_steps = [step for past in rounds for attempt in past.attempts for step in attempt.steps]
        generator_passages = len(passages_seen(generator_steps))
        with self.lms.use("judge"):
            return self.judge.ground(pair.question, pair.answer, passages_seen(generator_steps + solver_steps),
                                     generator_passages)

    def check(self, pair: QAPair, target_searches: int) -> list[Attempt]:
        """The search agent's K attempts at the pair, each judged as soon as it ends."""

        def solve_and_judge(rollout: int) -> Attempt:
            with self.lms.use("solver"):
                attempt = self.solver.attempt_one(pair.question, rollout)
            with self.lms.use("judge"):
                return self.judge.grade(pair.question, pair.answer, attempt,
                                        always_lm=self.protocol.always_lm_judge)

        def settles(attempt: Attempt) -> bool:  # a void attempt settles that the round has no verdict
            return is_void(attempt) or self.protocol.early_stop and settles_too_easy(attempt, target_searches)

        return run_attempts(solve_and_judge, self.k, settles, parallel=self.parallel_attempts)


def _void_cause(attempts: list[Attempt]) -> str:
    cause = next((a for a in attempts if is_void(a)), attempts[0])
    return f"attempt failed in the {cause.failed_in or 'solver'}: {cause.error}"
