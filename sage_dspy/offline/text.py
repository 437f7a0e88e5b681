"""Plain-text reading for the offline LM: names, values of each answer type, and the phrases before them.

Everything here is deterministic string work over passages the agents actually retrieved; nothing knows the
corpus in advance.
"""

import re
from dataclasses import dataclass

from sage_dspy.answers import MONTHS
from sage_dspy.answers import normalize_answer as normalize  # noqa: F401 (re-exported for the roles)

_FULL_DATE = rf"\b(?:\d{{1,2}} (?:{MONTHS}) \d{{4}}|(?:{MONTHS}) \d{{1,2}}, \d{{4}})\b"
_YEAR = r"(?<![\d,.])\b(?:1[0-9]{3}|20[0-9]{2})\b(?![\d,]\d|\.\d)"
_NUMBER = r"(?<![\w,.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w,.])\d+(?:\.\d+)?(?!\w|,\d)"
DATE_RE = re.compile(f"{_FULL_DATE}|{_YEAR}")
NUMBER_RE = re.compile(_NUMBER)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d[\d,.]*|[^\sA-Za-z\d]")
_CONNECTORS = {"of", "de", "la", "le", "von", "van", "der", "den", "du", "da", "del", "and", "the"}
# Capitalised words that start sentences or are function words, never names on their own.
_NOT_NAMES = {
    "The", "A", "An", "In", "On", "At", "It", "Its", "He", "She", "His", "Her", "They", "Their", "This", "That",
    "These", "Those", "After", "Before", "During", "When", "While", "As", "By", "For", "From", "With", "Since",
    "Although", "Today", "There", "Here", "Many", "Some", "Most", "Both", "Each", "Every", "However", "Later",
    "Until", "Under", "Over", "Between", "Following", "Despite", "According", "Also", "Other", "Another", "Then",
    "If", "But", "And", "Or", "Of", "To", "Who", "What", "Which", "Where", "Why", "How", "One", "Two", "Three",
    *MONTHS.split("|"),
}


@dataclass(frozen=True)
class Span:
    text: str
    start: int
    end: int


def entity_spans(text: str) -> list[Span]:
    """Runs of capitalised words (joined by connectors like 'of'), in reading order."""
    spans, tokens = [], list(re.finditer(r"[A-Za-z][A-Za-z'\-]*", text))
    index = 0
    while index < len(tokens):
        if not _is_name_word(tokens[index].group()):
            index += 1
            continue
        last = index
        probe = index + 1
        while probe < len(tokens) and _adjacent(text, tokens[probe - 1], tokens[probe]):
            word = tokens[probe].group()
            if _is_name_word(word):
                last = probe
            elif word not in _CONNECTORS:
                break
            probe += 1
        span = _trim_span(text, tokens, index, last)
        if span:
            spans.append(span)
        index = last + 1
    return spans


def _is_name_word(word: str) -> bool:
    return word[0].isupper() and word not in _NOT_NAMES


def _adjacent(text: str, left: re.Match, right: re.Match) -> bool:
    return text[left.end():right.start()].strip() == ""


def _trim_span(text: str, tokens: list, first: int, last: int) -> Span | None:
    start, end = tokens[first].start(), tokens[last].end()
    return Span(text[start:end], start, end) if end > start else None


def values_of_type(text: str, answer_type: str) -> list[Span]:
    """Candidate answers of one type, in reading order."""
    if answer_type == "date":
        return [Span(m.group(), m.start(), m.end()) for m in DATE_RE.finditer(text)]
    if answer_type == "number":
        dates = [(m.start(), m.end()) for m in DATE_RE.finditer(text)]
        return [
            Span(m.group(), m.start(), m.end())
            for m in NUMBER_RE.finditer(text)
            if not any(s <= m.start() < e for s, e in dates)
        ]
    return entity_spans(text)


def words_before(text: str, position: int, count: int) -> str | None:
    """The `count` words just before `position` in the same clause, lowercased; None if there are fewer."""
    clause = re.split(r"[.;:!?()\"]", text[:position])[-1]
    words = re.findall(r"[A-Za-z][A-Za-z'\-]*", clause)
    tail = clause[len(clause.rstrip()):]
    if len(words) < count or not clause.rstrip().endswith(words[-1] if words else "") or "," in tail:
        return None
    chosen = words[-count:]
    if any(word[0].isupper() for word in chosen):
        return None  # a phrase holding another name would give that name away
    return " ".join(chosen).lower()


def find_phrase(text: str, phrase: str, start: int = 0) -> int | None:
    """End offset of the first whole-word, case-insensitive occurrence of `phrase` at or after `start`."""
    pattern = r"(?<![A-Za-z])" + r"\s+".join(map(re.escape, phrase.split())) + r"(?![A-Za-z])"
    match = re.compile(pattern, re.IGNORECASE).search(text, start)
    return match.end() if match else None


def value_after(text: str, phrase: str, answer_type: str) -> Span | None:
    """The value of `answer_type` that directly follows the first occurrence of `phrase` (the solver's read)."""
    end = find_phrase(text, phrase)
    if end is None:
        return None
    for span in values_of_type(text, answer_type):
        if span.start >= end:
            between = text[end:span.start]
            return span if re.fullmatch(r"\s*(?:the\s+|on\s+|in\s+)?", between, re.IGNORECASE) else None
    return None


def shortest_unique_phrase(text: str, target: Span, answer_type: str, *, min_words: int, max_words: int = 6):
    """The shortest phrase before `target` whose first occurrence leads back to `target` itself."""
    for count in range(min_words, max_words + 1):
        phrase = words_before(text, target.start, count)
        if phrase is None:
            return None
        found = value_after(text, phrase, answer_type)
        if found is not None and found.start == target.start:
            return phrase
    return None


def content_words(text: str) -> list[str]:
    stop = {"the", "a", "an", "of", "in", "on", "at", "to", "and", "or", "is", "was", "which", "what", "who",
            "when", "where", "how", "many", "much", "did", "does", "do", "for", "by", "with", "from", "that"}
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in stop]
