"""Chains of passages, each naming the next: how the offline roles build, write and walk them."""

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from sage_dspy.answers import ANSWER_TYPES
from sage_dspy.offline.grammar import TYPE_WORDS, ChainQuestion
from sage_dspy.offline.text import (
    content_words,
    Span,
    entity_spans,
    normalize,
    shortest_unique_phrase,
    value_after,
    values_of_type,
    words_before,
)
from sage_dspy.search.passages import Passage

# Dates first (the most specific answers a passage offers), then the other types in their usual order.
FALLBACK_TYPES = tuple(sorted(ANSWER_TYPES, key=lambda kind: kind != "date"))


@dataclass(frozen=True)
class WrittenPair:
    question: str
    answer: str
    answer_type: str
    steps: list[str]
    plan: ChainQuestion


def base_title(title: str) -> str:
    """A title without its disambiguation: "Brown County, Indiana" and "Halo (song)" are named in text as
    "Brown County" and "Halo"."""
    return normalize(re.sub(r"\s*\(.*?\)\s*$", "", title).split(",")[0])


def names_title(name: str, title: str) -> bool:
    wanted = normalize(name)
    return bool(wanted) and wanted in (normalize(title), base_title(title))


def title_match(hits: Sequence[Passage], name: str, *, exact: bool = False) -> Passage | None:
    """The hit that is about `name`: its title (or base title), else (unless `exact`) a title inside the
    name or the name inside a title."""
    wanted = normalize(name)
    for hit in hits:
        if names_title(name, hit.title):
            return hit
    if exact:
        return None
    for hit in hits:
        title = normalize(hit.title)
        if title and (f" {title} " in f" {wanted} " or f" {wanted} " in f" {title} "):
            return hit
    return None


def mention_of(passage: Passage, title: str) -> Span | None:
    """Where `passage` names `title` (not at a clause start, so a phrase can lead to it)."""
    for span in entity_spans(passage.text):
        if names_title(span.text, title) and words_before(passage.text, span.start, 1):
            return span
    return None


def link_phrase(passage: Passage, mention: Span, careful: bool) -> str | None:
    """Words that lead a reader from `passage` to `mention`. A draft takes two words; a careful writer takes
    the shortest phrase whose first occurrence really leads to this mention."""
    if careful:
        return shortest_unique_phrase(passage.text, mention, "entity", min_words=2)
    return words_before(passage.text, mention.start, 2)


def answer_in(passage: Passage, answer_type: str, exclude: set[str], *, common_only: bool = False
              ) -> tuple[Span, str] | None:
    """A value of `answer_type` in `passage` and the shortest cue that reads it back unambiguously.

    Cues of common words come first: a distinctive cue ("nationalised in") lets a keyword search land on
    the last passage directly and skip the chain."""
    found = []
    for value in values_of_type(passage.text, answer_type):
        if normalize(value.text) in exclude:
            continue
        cue = shortest_unique_phrase(passage.text, value, answer_type, min_words=2)
        if cue and not (common_only and content_words(cue)):
            found.append((bool(content_words(cue)), value, cue))
    found.sort(key=lambda item: item[0])  # stable: reading order within each group
    return (found[0][1], found[0][2]) if found else None


def write_chain(chain: Sequence[Passage], answer_type: str, *, careful: bool, common_only: bool = False
                ) -> WrittenPair | None:
    """Compose the question for a chain, trying the requested answer type first."""
    relations = []
    for here, there in zip(chain, chain[1:]):
        mention = mention_of(here, there.title)
        phrase = link_phrase(here, mention, careful) if mention else None
        if phrase is None:
            return None
        relations.append(phrase)
    exclude = {normalize(p.title) for p in chain}
    for kind in (answer_type, *[t for t in FALLBACK_TYPES if t != answer_type]):
        found = answer_in(chain[-1], kind, exclude, common_only=common_only)
        if found:
            value, cue = found
            plan = ChainQuestion(chain[0].title, tuple(relations), cue, kind)
            return WrittenPair(plan.render(), value.text, kind, steps_for(chain, plan, value.text), plan)
    return None


def steps_for(chain: Sequence[Passage], plan: ChainQuestion, answer: str) -> list[str]:
    steps = [f'Search "{chain[0].title}": {chain[0].title} (id: {chain[0].id})']
    for relation, passage in zip(plan.relations, chain[1:]):
        steps.append(f'Search the name after "{relation}": {passage.title} (id: {passage.id})')
    steps.append(f'Read the {TYPE_WORDS[plan.answer_type]} after "{plan.cue}": {answer}')
    return steps


def walk(plan: ChainQuestion, find: Callable[[str], Passage | None]) -> list[Passage]:
    """Follow a chain question through `find` (title -> passage); returns the passages reached, in order."""
    reached = []
    current = find(plan.entry_title)
    while current is not None:
        reached.append(current)
        if len(reached) > len(plan.relations):
            break
        name = value_after(current.text, plan.relations[len(reached) - 1], "entity")
        current = find(name.text) if name else None
    return reached
