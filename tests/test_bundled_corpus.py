"""The bundled corpus (sage_dspy/data/world.jsonl) keeps the properties the offline engine relies on.

The offline roles read passages with plain string rules: a link is a passage title named exactly, right after
a short lowercase relational phrase; an answer is a year, a number or a capitalised name right after a
distinctive lowercase phrase. These checks use the standard library only and mirror those rules, so an edit
to the corpus that would break a demo chain fails here first.
"""

import json
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from sage_dspy.answers import MONTHS

CORPUS = Path(__file__).resolve().parents[1] / "sage_dspy" / "data" / "world.jsonl"

FULL_DATE_RE = re.compile(rf"\b\d{{1,2}} (?:{MONTHS}) (\d{{4}})\b")
# The same shapes as sage_dspy.offline.text: a 4-digit 1000-2099 token is a date, other digits a number.
YEARLIKE_RE = re.compile(r"(?<![\d,.])\b(?:1[0-9]{3}|20[0-9]{2})\b(?![\d,]\d|\.\d)")
NUMBER_RE = re.compile(r"(?<![\w,.])\d{1,3}(?:,\d{3})+(?![\w])|(?<![\w,.])\d+(?!\w|,\d)")
WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*")
CONNECTORS = {"of", "de", "la", "le", "von", "van", "der", "den", "du", "da", "del", "and", "the"}
NOT_NAMES = {
    "The", "A", "An", "In", "On", "At", "It", "Its", "He", "She", "His", "Her", "They", "Their", "This", "That",
    "These", "Those", "After", "Before", "During", "When", "While", "As", "By", "For", "From", "With", "Since",
    "Although", "Today", "There", "Here", "Many", "Some", "Most", "Both", "Each", "Every", "However", "Later",
    "Until", "Under", "Over", "Between", "Following", "Despite", "According", "Also", "Other", "Another", "Then",
    "If", "But", "And", "Or", "Of", "To", "Who", "What", "Which", "Where", "Why", "How", "One", "Two", "Three",
    *MONTHS.split("|"),
}
TITLE_RE = re.compile(r"[A-Z][a-z]+(?: [A-Z][a-z]+){0,3}")
MIN_WORDS, MAX_WORDS = 60, 120
CHAIN_LENGTH = 4  # passages in a chain: A names B, B names C, C names D
MIN_PER_KIND = 100  # passages holding each kind of answer fact


@lru_cache(maxsize=1)
def records() -> tuple[dict, ...]:
    rows = []
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"line {number} is blank"
        row = json.loads(line)
        assert isinstance(row, dict) and set(row) == {"id", "title", "text"}, f"line {number}: {row!r}"
        assert all(isinstance(row[key], str) and row[key] for key in row), f"line {number}: empty field"
        rows.append(row)
    return tuple(rows)


def titles() -> list[str]:
    return [row["title"] for row in records()]


def sentence_starts(text: str) -> set[int]:
    return {0} | {m.end() for m in re.finditer(r"[.!?]\s+", text)}


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]


def lowercase_words_before(text: str, position: int, count: int = 2) -> str | None:
    """The `count` words right before `position` in the same sentence, if all are lowercase words."""
    clause = re.split(r"[.;:!?()\"]", text[:position])[-1]
    match = re.search(r"(?:^|\s)((?:[a-z][a-z'\-]* ){%d})$" % count, clause)
    return match.group(1).strip() if match else None


def mentions(text: str, own_title: str) -> dict[str, list[int]]:
    """Every other title found in `text` (plain substring search), with where it occurs."""
    found = {}
    for title in titles():
        if title != own_title and title in text:
            found[title] = [m.start() for m in re.finditer(re.escape(title), text)]
    return found


def name_spans(text: str) -> list[tuple[str, int]]:
    """Runs of capitalised words joined by connectors, as the offline engine reads names."""
    spans, tokens, index = [], list(WORD_RE.finditer(text)), 0
    is_name = lambda word: word[0].isupper() and word not in NOT_NAMES  # noqa: E731
    while index < len(tokens):
        if not is_name(tokens[index].group()):
            index += 1
            continue
        last = probe = index
        probe += 1
        while probe < len(tokens) and not text[tokens[probe - 1].end():tokens[probe].start()].strip():
            word = tokens[probe].group()
            if is_name(word):
                last = probe
            elif word not in CONNECTORS:
                break
            probe += 1
        spans.append((text[tokens[index].start():tokens[last].end()], tokens[index].start()))
        index = last + 1
    return spans


@lru_cache(maxsize=1)
def link_graph() -> dict[str, list[str]]:
    return {row["title"]: sorted(mentions(row["text"], row["title"])) for row in records()}


def has_chain(graph: dict[str, list[str]], start: str, length: int) -> bool:
    def extend(path: list[str]) -> bool:
        if len(path) == length:
            return True
        return any(extend([*path, nxt]) for nxt in graph[path[-1]] if nxt not in path)

    return extend([start])


def answer_facts(text: str) -> dict[str, list[tuple[str, int]]]:
    """Years, full dates, non-year numbers and non-title multiword names in `text`, each with its offset."""
    date_spans = [(m.start(), m.end()) for m in FULL_DATE_RE.finditer(text)]
    date_spans += [(m.start(), m.end()) for m in YEARLIKE_RE.finditer(text)]
    years = [(m.group(), m.start()) for m in YEARLIKE_RE.finditer(text)]
    dates = [(m.group(), m.start()) for m in FULL_DATE_RE.finditer(text)]
    numbers = [(m.group(), m.start()) for m in NUMBER_RE.finditer(text)
               if not any(start <= m.start() < end for start, end in date_spans)]
    all_titles = titles()
    names = [(name, start) for name, start in name_spans(text)
             if len(name.split()) >= 2 and name not in all_titles and not any(t in name for t in all_titles)]
    return {"year": years, "date": dates, "number": numbers, "name": names}


def first_occurrence_end(text: str, phrase: str) -> int | None:
    """End of the first whole-word, case-insensitive occurrence of `phrase` (how a reader finds a cue)."""
    pattern = r"(?<![A-Za-z])" + r"\s+".join(map(re.escape, phrase.split())) + r"(?![A-Za-z])"
    match = re.search(pattern, text, re.IGNORECASE)
    return match.end() if match else None


def cue_leads_to(text: str, position: int) -> bool:
    """The two lowercase words before `position`, searched from the top of the passage, land right there."""
    phrase = lowercase_words_before(text, position)
    end = first_occurrence_end(text, phrase) if phrase else None
    return end is not None and not text[end:position].strip()


# ------------------------------------------------------------------------------------------------ format

def test_every_line_is_a_record_with_unique_id_and_title():
    ids = [row["id"] for row in records()]
    assert len(records()) >= 120
    assert all(re.fullmatch(r"w\d{3}", i) for i in ids), ids
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert [t for t, n in Counter(titles()).items() if n > 1] == []


def test_titles_are_short_capitalised_and_never_nested():
    for title in titles():
        assert TITLE_RE.fullmatch(title), f"{title!r}: 1-4 words, each capitalised"
        assert not title.startswith("The "), title
    nested = [(a, b) for a in titles() for b in titles() if a != b and a in b]
    assert nested == []


def test_text_length_and_title_in_first_sentence():
    for row in records():
        words = len(row["text"].split())
        assert MIN_WORDS <= words <= MAX_WORDS, f"{row['title']}: {words} words"
        assert row["title"] in first_sentence(row["text"]), f"{row['title']}: not in its first sentence"
        assert "  " not in row["text"] and row["text"] == row["text"].strip(), row["title"]


# ------------------------------------------------------------------------------------------------- links

def test_each_passage_names_one_to_three_other_titles_once_after_a_lowercase_phrase():
    for row in records():
        text, found = row["text"], mentions(row["text"], row["title"])
        assert 1 <= len(found) <= 3, f"{row['title']}: links {sorted(found)}"
        for title, positions in found.items():
            assert len(positions) == 1, f"{row['title']}: names {title!r} {len(positions)} times"
            start = positions[0]
            end = start + len(title)
            assert start not in sentence_starts(text), f"{row['title']}: {title!r} starts a sentence"
            assert lowercase_words_before(text, start), f"{row['title']}: no lowercase phrase before {title!r}"
            assert not re.match(r"[\w'\-]", text[end:end + 1]), f"{row['title']}: {title!r} runs on"
            # the engine reads a name as a run of capitalised words: the mention must be the whole run
            assert (title, start) in name_spans(text), f"{row['title']}: {title!r} is part of a longer name"
            # a two-word link phrase, looked up from the top of the passage, leads to this mention
            assert cue_leads_to(text, start), f"{row['title']}: the phrase before {title!r} occurs earlier"


def test_link_graph_has_long_chains_and_no_isolated_passage():
    graph = link_graph()
    indegree = Counter(t for targets in graph.values() for t in targets)
    assert [t for t in graph if indegree[t] == 0] == [], "passages no other passage names"
    assert [t for t, targets in graph.items() if not targets] == [], "passages naming no other passage"
    starts = [t for t in graph if has_chain(graph, t, CHAIN_LENGTH)]
    assert len(starts) >= MIN_PER_KIND, f"only {len(starts)} passages start a chain of {CHAIN_LENGTH}"


# ------------------------------------------------------------------------------------------------- facts

def test_years_numbers_and_names_for_answers():
    counts, cued = Counter(), Counter()
    for row in records():
        text, facts = row["text"], answer_facts(row["text"])
        for year, _ in facts["year"]:
            assert 1700 <= int(year) <= 2025, f"{row['title']}: year {year} out of range"
        # a day and month without a year would be read as a bare number ("held on 14 June" -> 14)
        assert not re.search(rf"\b\d{{1,2}} (?:{MONTHS})\b(?! \d{{4}})", text), f"{row['title']}: date lacks a year"
        counts.update(kind for kind, values in facts.items() if values)
        # an answer is usable when a two-word phrase found from the top of the passage leads to it
        for kind, values in (("year", facts["year"] + facts["date"]), ("number", facts["number"]),
                             ("name", facts["name"])):
            cued[kind] += any(cue_leads_to(text, start) for _, start in values)
    for kind in ("year", "number", "name"):
        assert counts[kind] >= MIN_PER_KIND, f"only {counts[kind]} passages with a {kind}"
        assert cued[kind] >= MIN_PER_KIND, f"only {cued[kind]} passages with a {kind} behind a unique phrase"
    assert counts["date"] >= 30, f"only {counts['date']} passages with a full date"


def test_answer_names_are_never_titles():
    all_titles = set(titles())
    for row in records():
        for name, _ in answer_facts(row["text"])["name"]:
            assert name not in all_titles


def test_phrase_before_each_fact_is_not_repeated_within_a_passage():
    for row in records():
        text = row["text"]
        facts = answer_facts(text)
        positions = [start for values in facts.values() for _, start in values]
        positions += [p for found in mentions(text, row["title"]).values() for p in found]
        phrases = [p for p in (lowercase_words_before(text, start) for start in sorted(set(positions))) if p]
        repeated = [p for p, n in Counter(phrases).items() if n > 1]
        assert repeated == [], f"{row['title']}: {repeated} introduce more than one fact"
