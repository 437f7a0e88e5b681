"""Execution feedback in plain Python: the verdict on a round, the feedback text, and the keep rules.

No LM here. The loop, the optimizer's metric and the reports all read verdicts from this one module, so
generation and training agree on what a good pair is.
"""

from dataclasses import dataclass, field

from sage_dspy.answers import normalize_answer
from sage_dspy.method.failures import JUDGE, is_service_kind
from sage_dspy.method.trajectory import Step
from sage_dspy.search.passages import Passage

MIN_KEPT_SEARCHES = 2  # the paper drops pairs a search agent answers with fewer searches
NO_GENERATOR_SEARCH = "no successful generator search"
UNGROUNDED = "answer in no retrieved passage"


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


def is_void(attempt: Attempt) -> bool:
    """A search or LM call of the attempt failed at the infrastructure (after its retries): the attempt is neither
    a search nor a wrong answer, and the other attempts cannot stand for it in Avg@K."""
    return is_service_kind(attempt.error_kind)


def round_is_void(attempts: list[Attempt]) -> bool:
    """No verdict for this round: an attempt is void, or none could be judged. The seed is not done, and a
    resume redoes it (runs.folder.failed_at_service)."""
    return any(is_void(a) for a in attempts) or bool(attempts) and all(is_service_fault(a) for a in attempts)


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


@dataclass(frozen=True)
class Grounding:
    """Where an accepted pair's answer comes from: the retrieved passage that states it, and how it was found.
    A judge that agrees with a weak solver is no evidence: only a passage the agents retrieved is."""

    passage_id: str  # "" when no retrieved passage supports the answer
    method: str  # "contained" (normalised text match), "alias", "lm" (the judge cited it) or "none"
    generator_passages: int  # passages the generator's own searches returned: 0 means it never retrieved one

    def to_dict(self) -> dict:
        return {"passage_id": self.passage_id, "method": self.method, "generator_passages": self.generator_passages}


def contains_answer(answer: str, text: str) -> bool:
    """The normalised answer is a run of whole words of the normalised text (3,400 matches 3400; "Ann" does
    not match "Annville")."""
    needle = normalize_answer(answer)
    return bool(needle) and f" {needle} " in f" {normalize_answer(text)} "


def passage_stating(answer: str, passages: list[Passage], aliases: tuple[str, ...] = ()) -> tuple[str, str]:
    """(passage id, "contained" or "alias") of the first passage whose title or text holds the answer or one of
    its aliases; ("", "none") when none does."""
    for method, names in (("contained", (answer,)), ("alias", aliases)):
        for passage in passages:
            if any(contains_answer(name, f"{passage.title}\n{passage.text}") for name in names):
                return passage.id, method
    return "", "none"


def cited_grounding(cited_id: str, passages: list[Passage], generator_passages: int) -> Grounding:
    """The judge's citation counts only when it names a passage the agents actually retrieved."""
    cited = cited_id.strip().strip("\"'`[]() ").removeprefix("id:").strip()
    known = {passage.id for passage in passages}
    return Grounding(cited if cited in known else "", "lm" if cited in known else "none", generator_passages)


def drop_reason(verdict: Verdict, grounding: Grounding | None = None) -> str | None:
    """Why a pair is not kept, or None if it is. `grounding` None: not checked (a pair that was not accepted,
    or a caller scoring verdicts alone)."""
    if not verdict.correct:
        return "incorrect"
    if not verdict.accepted:
        return "too easy"
    if verdict.searches is None or verdict.searches < MIN_KEPT_SEARCHES:
        return f"fewer than {MIN_KEPT_SEARCHES} searches"
    if grounding is not None and grounding.generator_passages == 0:
        return NO_GENERATOR_SEARCH
    if grounding is not None and not grounding.passage_id:
        return UNGROUNDED
    return None


def question_key(question: str) -> str:
    """Two questions that normalise the same are duplicates."""
    return normalize_answer(question)
