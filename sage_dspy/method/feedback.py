"""Execution feedback in plain Python: the verdict on a round, the feedback text, and the keep rules.

No LM here. The loop, the optimizer's metric and the reports all read verdicts from this one module, so
generation and training agree on what a good pair is.
"""

from dataclasses import dataclass, field

from sage_dspy.answers import normalize_answer
from sage_dspy.method.failures import JUDGE, is_service_kind
from sage_dspy.method.trajectory import Step

MIN_KEPT_SEARCHES = 2  # the paper drops pairs a search agent answers with fewer searches


@dataclass(frozen=True)
class Attempt:
    """One try of the search agent at a question."""

    answer: str
    searches: int
    correct: bool
    steps: list[Step] = field(default_factory=list)
    judged_by: str = "none"  # "exact": normalised match; "lm": the LM judge; "none": not judged
    error: str | None = None
    error_kind: str = ""  # the failure's kind (method.failures.error_kind), "" when it did not fail
    failed_in: str = ""  # "solver" or "judge": whose call failed
    raw_reply: str = ""  # a reply the adapter could not parse, truncated and scrubbed
    raw_replies: tuple[str, ...] = ()  # every unparseable reply of its parse retries, raw_reply the last


@dataclass(frozen=True)
class Verdict:
    target: int
    correct: bool  # pass@K: at least one attempt is correct
    searches: int | None  # difficulty: the fewest searches among correct attempts
    avg_at_k: float  # share of attempts that are correct
    attempts: int

    @property
    def accepted(self) -> bool:
        return self.correct and self.searches is not None and self.searches >= self.target

    @property
    def kind(self) -> str:
        if self.accepted:
            return "accepted"
        return "too_easy" if self.correct else "incorrect"


def is_service_fault(attempt: Attempt) -> bool:
    """The LM service or the judge failed, not the agent: the attempt says nothing about the pair, so it stays
    out of the verdict's counts."""
    return attempt.failed_in == JUDGE or is_service_kind(attempt.error_kind)


def settles_too_easy(attempt: Attempt, target: int) -> bool:
    """A correct attempt under the target makes the pair too easy whatever the other attempts do, so the
    remaining attempts cannot change the verdict."""
    return attempt.correct and attempt.searches < target


def verdict_for(attempts: list[Attempt], target: int) -> Verdict:
    """Pass@K, difficulty and Avg@K over the attempts that ran; service faults count for neither side."""
    counted = [a for a in attempts if not is_service_fault(a)]
    correct = [a for a in counted if a.correct]
    return Verdict(
        target=target,
        correct=bool(correct),
        searches=min((a.searches for a in correct), default=None),
        avg_at_k=len(correct) / len(counted) if counted else 0.0,
        attempts=len(counted),
    )


def feedback_text(verdict: Verdict, attempts: list[Attempt], answer: str) -> str:
    """What the reviser reads: differs by failure, as in the paper."""
    if verdict.kind == "too_easy":
        shortest = min((a for a in attempts if a.correct), key=lambda a: a.searches)
        queries = "; ".join(repr(s.query) for s in shortest.steps if s.tool == "search") or "no searches"
        return (
            f"Too easy: the search agent found the answer with {verdict.searches} search(es), but the target is "
            f"{verdict.target}. Its shortest correct attempt searched: {queries}. Work out which step it skipped "
            f"or which name in the question let it jump ahead, and add {verdict.target - verdict.searches} "
            "necessary step(s) so that every search is needed."
        )
    if verdict.kind == "incorrect":
        answers = ", ".join(repr(a.answer or a.error or "no answer") for a in attempts)
        return (
            f"Incorrect: none of the {verdict.attempts} attempts gave the answer {answer!r}; they answered "
            f"{answers}. Compare their searches with the intended steps to find where they diverged: the question "
            "may be ambiguous, a step may lead to another passage, or the answer may be wrong. Fix the question "
            "or the answer."
        )
    return "Accepted: the pair is correct and needs at least the target number of searches."


def drop_reason(verdict: Verdict) -> str | None:
    """Why a pair is not kept, or None if it is."""
    if not verdict.correct:
        return "incorrect"
    if not verdict.accepted:
        return "too easy"
    if verdict.searches is None or verdict.searches < MIN_KEPT_SEARCHES:
        return f"fewer than {MIN_KEPT_SEARCHES} searches"
    return None


def question_key(question: str) -> str:
    """Two questions that normalise the same are duplicates."""
    return normalize_answer(question)
