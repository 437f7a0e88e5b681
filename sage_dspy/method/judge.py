"""AnswerJudge: a normalised exact or alias match decides at once; the LM judge decides the rest.

`always_lm` is the paper's protocol: the LM judge rules on every answer, matches included (it costs one call
per attempt and gives the same verdicts wherever the LM judge agrees with an exact match).

`ground` finds the retrieved passage that states an accepted pair's answer: a text match first, the LM judge
(which must cite a retrieved passage) only where that fails."""

from dataclasses import replace

import dspy

from sage_dspy.answers import normalize_answer
from sage_dspy.method.failures import JUDGE, error_kind, error_message, raw_replies, raw_reply
from sage_dspy.method.feedback import Attempt, Grounding, cited_grounding, passage_stating
from sage_dspy.method.signatures import CiteSupportingPassage, JudgeAnswer
from sage_dspy.search.passages import format_passage, Passage


class AnswerJudge(dspy.Module):
    def __init__(self):
        super().__init__()
        self.decide = dspy.Predict(JudgeAnswer)
        self.cite = dspy.Predict(CiteSupportingPassage)

    def forward(self, question: str, gold: str, predicted: str, aliases: tuple[str, ...] = (),
                always_lm: bool = False):
        if not predicted.strip() or not gold.strip():
            return dspy.Prediction(correct=False, method="empty")
        if not always_lm and normalize_answer(predicted) in {normalize_answer(g) for g in (gold, *aliases)}:
            return dspy.Prediction(correct=True, method="exact")
        verdict = self.decide(question=question, gold_answer=gold, predicted_answer=predicted)
        return dspy.Prediction(correct=bool(verdict.is_correct), method="lm")

    def grade(self, question: str, gold: str, attempt: Attempt, aliases: tuple[str, ...] = (),
              always_lm: bool = False) -> Attempt:
        if attempt.error:
            return attempt
        try:
            result = self(question=question, gold=gold, predicted=attempt.answer, aliases=aliases,
                          always_lm=always_lm)
        except Exception as error:  # a judge failure marks this attempt unjudged, it does not stop the loop
            return replace(attempt, error=f"judge failed: {error_message(error)}", error_kind=error_kind(error),
                           failed_in=JUDGE, raw_reply=raw_reply(error), raw_replies=tuple(raw_replies(error)))
        return replace(attempt, correct=result.correct, judged_by=result.method)

    def ground(self, question: str, answer: str, retrieved: list[Passage], generator_passages: int,
               aliases: tuple[str, ...] = ()) -> Grounding:
        """The retrieved passage that states `answer`. No call when the generator never retrieved a passage
        (the pair is dropped whatever the passages say) or when a text match finds it. A failed call raises:
        an unreachable judge is no verdict on the pair."""
        if generator_passages == 0 or not retrieved:
            return Grounding("", "none", generator_passages)
        passage_id, method = passage_stating(answer, retrieved, aliases)
        if passage_id:
            return Grounding(passage_id, method, generator_passages)
        listing = "\n\n".join(format_passage(passage) for passage in retrieved)
        cited = self.cite(question=question, answer=answer, passages=listing).supporting_passage_id
        return cited_grounding(str(cited), retrieved, generator_passages)
