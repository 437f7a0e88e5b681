"""Every instruction the LMs see, in one place.

Field names are part of the contract: they become keys in saved programs and MLflow span names, and the
offline LM recognises each task by them. Treat a rename as a breaking change.
"""

from typing import Literal

import dspy

from sage_dspy.answers import ANSWER_TYPES

AnswerType = Literal[ANSWER_TYPES]


class ProposeQA(dspy.Signature):
    """Write one question-answer pair that a search agent can answer only by searching a corpus several times.

    Start from the seed passage and use the search tool to follow what it mentions: find a passage about an
    entity the seed names, then a passage about an entity that one names, and so on, until answering needs
    about `target_searches` searches, one per passage on the path. Then write a question whose answer is a
    short, unique value of the requested `answer_type` (a number, a date, or an entity name) stated in the
    last passage. Describe each intermediate entity through the passage that leads to it instead of naming it,
    so no step can be skipped. Never ask how or why. Answer only from passages you retrieved."""

    seed_passage: str = dspy.InputField(desc="the passage to start from, with its title and id")
    target_searches: int = dspy.InputField(desc="how many searches answering the question must need")
    answer_type: AnswerType = dspy.InputField()
    question: str = dspy.OutputField()
    answer: str = dspy.OutputField(desc="short and unique: a number, a date, or an entity name")
    answering_steps: list[str] = dspy.OutputField(desc="one line per search a solver must make, in order")


class AnswerWithSearch(dspy.Signature):
    """Answer the question by searching the corpus. Search for one entity or fact at a time and follow what
    the passages say. Reply with the short answer alone: a number, a date, or a name."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="the short answer alone")


class JudgeAnswer(dspy.Signature):
    """Decide whether the predicted answer means the same as the gold answer for this question. Different
    formats of the same number, date or name count as the same; a different or less specific value does not."""

    question: str = dspy.InputField()
    gold_answer: str = dspy.InputField()
    predicted_answer: str = dspy.InputField()
    is_correct: bool = dspy.OutputField()


class CiteSupportingPassage(dspy.Signature):
    """Find the passage that states the answer to the question. Reply with that passage's id exactly as it
    is written after "id:", or "none" if no passage states the answer: a passage that only mentions related
    facts, or states a different value, does not count."""

    question: str = dspy.InputField()
    answer: str = dspy.InputField()
    passages: str = dspy.InputField(desc="the passages the agents retrieved, each headed by its title and id")
    supporting_passage_id: str = dspy.OutputField(desc='the id of the passage that states the answer, or "none"')


class ReviseTooEasy(dspy.Signature):
    """The search agent answered this question correctly with fewer searches than the target. Read the
    feedback and the agents' trajectories to see how it short-cut the intended path, then rewrite the pair so
    every step is necessary: describe a named entity through another passage instead of naming it, or add a
    hop from the evidence. You cannot search: use only the evidence passages. The answer must stay short,
    unique and of the same type; never ask how or why."""

    question: str = dspy.InputField()
    answer: str = dspy.InputField()
    answering_steps: list[str] = dspy.InputField()
    target_searches: int = dspy.InputField()
    why_too_easy: str = dspy.InputField(desc="what the search agent did and how it short-cut the path")
    generator_trajectory: str = dspy.InputField(desc="the searches that produced the pair")
    solver_trajectories: str = dspy.InputField(desc="the search agent's attempts")
    evidence: str = dspy.InputField(desc="every passage either agent retrieved")
    revised_question: str = dspy.OutputField()
    revised_answer: str = dspy.OutputField()
    revised_steps: list[str] = dspy.OutputField()


class ReviseIncorrect(dspy.Signature):
    """No attempt of the search agent reached the given answer. Read the feedback and the trajectories to
    find why the answers differ: an ambiguous question, a step that leads elsewhere, or a wrong answer. Fix
    the question or the answer so that exactly one short answer is supported by the evidence. You cannot
    search: use only the evidence passages. Keep the answer type; never ask how or why."""

    question: str = dspy.InputField()
    answer: str = dspy.InputField()
    answering_steps: list[str] = dspy.InputField()
    target_searches: int = dspy.InputField()
    why_incorrect: str = dspy.InputField(desc="the agent's answers and where they diverged")
    generator_trajectory: str = dspy.InputField(desc="the searches that produced the pair")
    solver_trajectories: str = dspy.InputField(desc="the search agent's attempts")
    evidence: str = dspy.InputField(desc="every passage either agent retrieved")
    revised_question: str = dspy.OutputField()
    revised_answer: str = dspy.OutputField()
    revised_steps: list[str] = dspy.OutputField()
