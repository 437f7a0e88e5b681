"""The offline answer judge: lenient about format, strict about the value."""

import re

from sage_dspy.answers import MONTHS
from sage_dspy.offline.text import normalize
from sage_dspy.search.passages import parse_passages


def same_answer(gold: str, predicted: str) -> bool:
    gold_norm, pred_norm = normalize(gold), normalize(predicted)
    if not gold_norm or not pred_norm:
        return False
    if gold_norm == pred_norm:
        return True
    gold_numbers, pred_numbers = _numbers(gold_norm), _numbers(pred_norm)
    if gold_numbers or pred_numbers:
        # A date or quantity is right only when every number in it agrees (same day, month and year).
        return gold_numbers == pred_numbers and _months(gold) == _months(predicted)
    return _token_f1(gold_norm, pred_norm) >= 0.67


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text)


def _months(text: str) -> set[str]:
    return set(re.findall(MONTHS, text))


def _token_f1(a: str, b: str) -> float:
    left, right = a.split(), b.split()
    common = sum(min(left.count(w), right.count(w)) for w in set(left))
    if common == 0:
        return 0.0
    precision, recall = common / len(right), common / len(left)
    return 2 * precision * recall / (precision + recall)


def judge(inputs: dict[str, str]) -> dict:
    verdict = same_answer(inputs.get("gold_answer", ""), inputs.get("predicted_answer", ""))
    return {"is_correct": verdict}


def cite(inputs: dict[str, str]) -> dict:
    """The first listed passage holding every word of the answer (any order), else "none"."""
    words = set(normalize(inputs.get("answer", "")).split())
    for passage in parse_passages(inputs.get("passages", "")):
        if words and words <= set(normalize(f"{passage.title} {passage.text}").split()):
            return {"supporting_passage_id": passage.id}
    return {"supporting_passage_id": "none"}
