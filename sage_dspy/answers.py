"""Answer normalisation shared by the judge, the offline LM and the keep rules."""

import re


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles, collapse spaces (the SQuAD normalisation); 3,400 == 3400."""
    text = re.sub(r"(?<=\d),(?=\d{3})", "", str(text).lower())
    text = re.sub(r"[^\w\s.]", " ", text)
    text = re.sub(r"\.(?!\d)", " ", text)
    return " ".join(word for word in text.split() if word not in {"a", "an", "the"})
