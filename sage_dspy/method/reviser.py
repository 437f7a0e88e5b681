"""Reviser and Resampler: the two ways a loop gets its next pair after a failed round.

Reviser is SAGE: it reads the execution feedback and rewrites the pair from passages either agent already
retrieved (no new search). Resampler is the paper's baseline: a fresh pair from the generator, no feedback.
"""

import dspy

from sage_dspy.answers import answer_type_of
from sage_dspy.method import trajectory
from sage_dspy.method.feedback import feedback_text
from sage_dspy.method.pair import QAPair, as_steps
from sage_dspy.search.passages import format_passage, Passage
from sage_dspy.method.signatures import ReviseIncorrect, ReviseTooEasy
from sage_dspy.method.solver import rollout_lm

MAX_EVIDENCE_PASSAGES = 40  # bounds the reviser's prompt on long trajectories


def evidence_of(seed: Passage, rounds: list) -> list[Passage]:
    """The seed and every passage the generator or the solver retrieved, in order of first sighting."""
    seen = {seed.id: seed}
    for past in rounds:
        steps = list(past.pair.trajectory)
        for attempt in past.attempts:
            steps.extend(attempt.steps)
        for passage in trajectory.passages_seen(steps):
            seen.setdefault(passage.id, passage)
    return list(seen.values())[:MAX_EVIDENCE_PASSAGES]


class Reviser(dspy.Module):
    role = "reviser"

    def __init__(self):
        super().__init__()
        self.harden = dspy.ChainOfThought(ReviseTooEasy)
        self.repair = dspy.ChainOfThought(ReviseIncorrect)

    def forward(self, seed: Passage, target_searches: int, answer_type: str, rounds: list) -> QAPair:
        last = rounds[-1]
        pair, verdict = last.pair, last.verdict
        generator_steps = next((r.pair.trajectory for r in reversed(rounds) if r.pair.trajectory), [])
        shared = dict(
            question=pair.question,
            answer=pair.answer,
            answering_steps=pair.steps,
            target_searches=target_searches,
            generator_trajectory=trajectory.render(generator_steps),
            solver_trajectories="\n\n".join(
                f"attempt {n} answered {a.answer!r} ({a.searches} searches):\n{trajectory.render(a.steps)}"
                for n, a in enumerate(last.attempts, start=1)),
            evidence="\n\n".join(format_passage(p) for p in evidence_of(seed, rounds)),
        )
        why = feedback_text(verdict, last.attempts, pair.answer)
        if verdict.kind == "too_easy":
            result = self.harden(**shared, why_too_easy=why)
        else:
            result = self.repair(**shared, why_incorrect=why)
        return QAPair(
            question=str(result.revised_question).strip(),
            answer=str(result.revised_answer).strip(),
            answer_type=answer_type_of(str(result.revised_answer), default=answer_type),
            steps=as_steps(result.revised_steps),
            origin=f"revised:{verdict.kind}",
            reasoning=str(getattr(result, "reasoning", "")),
        )


class Resampler(dspy.Module):
    """Draws a fresh pair for the same seed; each round samples a new rollout of the generator."""

    role = "generator"

    def __init__(self, generator: dspy.Module):
        super().__init__()
        self.generator = generator

    def forward(self, seed: Passage, target_searches: int, answer_type: str, rounds: list) -> QAPair:
        with dspy.context(lm=rollout_lm(dspy.settings.lm, len(rounds))):
            result = self.generator(seed=seed, target_searches=target_searches, answer_type=answer_type,
                                    origin="resampled")
        return result.pair
