"""AnswerJudge: a normalised exact or alias match decides at once; the LM judge decides the rest.

`always_lm` is the paper's protocol: the LM judge rules on every answer, matches included (it costs one call
per attempt and gives the same verdicts wherever the LM judge agrees with an exact match)."""

from dataclasses import replace

import dspy

from sage_dspy.answers import normalize_answer
from sage_dspy.method.failures import JUDGE, error_kind, error_message, raw_replies, raw_reply
from sage_dspy.method.feedback import Attempt
from sage_dspy.method.signatures import JudgeAnswer


class AnswerJudge(dspy.Module):
    def __init__(self):
        super().__init__()
        self.decide = dspy.Predict(JudgeAnswer)

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
