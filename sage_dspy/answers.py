"""Answers: their types, normalisation and type detection, shared by the judge, the offline LM and the keep rules."""

import re


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse spaces (the SQuAD normalisation); 3,400 == 3400."""
    text = re.sub(r"(?<=\d),(?=\d{3})", "", str(text).lower())
    text = re.sub(r"[^\w\s.]", " ", text)
    text = re.sub(r"\.(?!\d)", " ", text)
    return " ".join(word for word in text.split() if word not in {"a", "an", "the"})


ANSWER_TYPES = ("number", "date", "entity")  # the paper's answer types: short, unique, never how/why
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE = re.compile(rf"(?:\d{{1,2}} (?:{MONTHS}),? \d{{4}}|(?:{MONTHS}) \d{{1,2}},? \d{{4}}|(?:{MONTHS}) \d{{4}}|"
                   r"1\d{3}|20\d{2})", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:\s*%|\s+[a-z]+)?", re.IGNORECASE)


def answer_type_of(answer: str, default: str = "entity") -> str:
    """The type an answer actually has: a date (or year), a number, or an entity name; `default` if empty."""
    text = answer.strip()
    if not text:
        return default
    if _DATE.fullmatch(text):
        return "date"
    if _NUMBER.fullmatch(text):
        return "number"
    return "entity"
