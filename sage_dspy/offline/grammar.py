"""The offline LM's question language: a chain of passages written as plain, checkable English.

A chain starts at a named passage, follows the name that comes right after a quoted phrase in each passage,
and asks for the value right after a final quoted phrase. Each link needs one search, so a chain of n
passages needs n searches. The offline generator writes this form, and the offline solver and reviser read
it; a question in any other form is answered by the solver's generic strategy instead.
"""

import re
from dataclasses import dataclass, replace

TYPE_WORDS = {"date": "date", "number": "number", "entity": "name"}
_WORD_TYPES = {word: kind for kind, word in TYPE_WORDS.items()}


@dataclass(frozen=True)
class ChainQuestion:
    entry_title: str
    relations: tuple[str, ...]  # one per link: the words right before the next passage's name
    cue: str  # the words right before the answer in the last passage
    answer_type: str

    @property
    def searches_needed(self) -> int:
        return len(self.relations) + 1

    def render(self) -> str:
        ask = f'which {TYPE_WORDS[self.answer_type]} comes right after "{self.cue}"?'
        if not self.relations:
            return f'In the passage on "{self.entry_title}", {ask}'
        hops = ", then ".join(f'to the passage on the name right after "{r}"' for r in self.relations)
        return f'Start from the passage on "{self.entry_title}". Go {hops}. There, {ask}'

    def with_entry(self, title: str, relation: str) -> "ChainQuestion":
        """One more hop in front: reach the old entry through a passage that names it."""
        return replace(self, entry_title=title, relations=(relation, *self.relations))


_ENTRY = re.compile(r'^(?:In|Start from) the passage on "([^"]+)"')
_RELATION = re.compile(r'the passage on the name right after "([^"]+)"')
_ASK = re.compile(r'which (date|number|name) comes right after "([^"]+)"\?\s*$')


def parse_question(question: str) -> ChainQuestion | None:
    """Read a question written by `ChainQuestion.render`; None for any other question."""
    question = question.strip()
    entry, ask = _ENTRY.search(question), _ASK.search(question)
    if not entry or not ask:
        return None
    return ChainQuestion(
        entry_title=entry.group(1),
        relations=tuple(_RELATION.findall(question)),
        cue=ask.group(2),
        answer_type=_WORD_TYPES[ask.group(1)],
    )
