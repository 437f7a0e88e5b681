"""The judge's calibration: a few fixed items whose verdict nobody can dispute, put to the LM judge before a run.

A judge that calls garbage correct turns every wrong attempt into an accepted pair (issue 23: a 135M model
judging its own answers kept "[#description of question] #outputJSON (" as data). The items are plain data,
and scoring them is plain Python; the only LM call is the judge's own signature (`AnswerJudge.decide`), asked
on every item even where a normalised match would settle it, because the LM is what is being checked.
"""

from dataclasses import dataclass

from dspy.utils.exceptions import AdapterParseError

from sage_dspy.method.failures import error_message
from sage_dspy.method.judge import AnswerJudge


@dataclass(frozen=True)
class CalibrationItem:
    kind: str  # "equal", "different" or "alias"
    question: str
    gold: str
    predicted: str
    correct: bool  # the verdict any usable judge gives


JUDGE_CALIBRATION = (
    CalibrationItem("equal", "In which year was Corvel Institute founded?", "1851", "1851", True),
    CalibrationItem("different", "In which year was Corvel Institute founded?", "1851", "1790", False),
    CalibrationItem("different", "Who designed Harbor Bridge?", "Ada Marlowe", "Tobias Wren", False),
    CalibrationItem("different", "Where did Ada Marlowe study?", "Corvel Institute",
                    "[#description of question] #outputJSON (", False),
    CalibrationItem("alias", "When was the treaty signed?", "12 March 1890", "March 12, 1890", True),
    CalibrationItem("alias", "Who designed Harbor Bridge?", "Ada Marlowe", "Marlowe, Ada", True),
)


@dataclass(frozen=True)
class ItemOutcome:
    item: CalibrationItem
    said: bool | None  # the judge's verdict; None when its reply could not be parsed
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.said is self.item.correct

    def describe(self) -> str:
        said = "an unparseable reply" if self.said is None else ("correct" if self.said else "wrong")
        return f"{self.item.predicted!r} for {self.item.gold!r} ({self.item.kind}): said {said}"


@dataclass(frozen=True)
class Calibration:
    outcomes: tuple[ItemOutcome, ...]

    @property
    def failed(self) -> list[ItemOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]

    @property
    def passed(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """'6 of 6 calibration items right', or which ones it got wrong."""
        right = len(self.outcomes) - len(self.failed)
        wrong = "; ".join(outcome.describe() for outcome in self.failed)
        return f"{right} of {len(self.outcomes)} calibration items right" + (f" (wrong: {wrong})" if wrong else "")

    def to_dict(self) -> dict:
        return {"passed": self.passed, "right": len(self.outcomes) - len(self.failed), "items": len(self.outcomes),
                "wrong": [outcome.describe() for outcome in self.failed]}


def calibrate_judge(judge: AnswerJudge | None = None, items=JUDGE_CALIBRATION) -> Calibration:
    """Put every item to the current LM through the judge's signature. A reply that cannot be parsed fails its
    item (a judge that cannot answer in the format is no judge); any other failure (the service) raises, as it
    says nothing about the judge."""
    judge = judge or AnswerJudge()
    outcomes = []
    for item in items:
        try:
            said = bool(judge.decide(question=item.question, gold_answer=item.gold,
                                     predicted_answer=item.predicted).is_correct)
            outcomes.append(ItemOutcome(item, said))
        except AdapterParseError as error:
            outcomes.append(ItemOutcome(item, None, error_message(error)))
    return Calibration(tuple(outcomes))
