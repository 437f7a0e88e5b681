"""The offline reviser: rewrites a pair from the evidence both agents retrieved, without searching.

Too easy: put one more necessary hop in front (a retrieved passage that names the entry) or behind (a
retrieved passage the last one names). Incorrect: rebuild every phrase so its first occurrence leads where
the steps went, and take the answer the evidence states.
"""

import json
import re
from dataclasses import replace

from sage_dspy.offline.chains import link_phrase, mention_of, names_title, steps_for, write_chain
from sage_dspy.offline.grammar import ChainQuestion, parse_question
from sage_dspy.offline.prompt import Prompt
from sage_dspy.offline.text import (
    content_words,
    entity_spans,
    normalize,
    shortest_unique_phrase,
    values_of_type,
)
from sage_dspy.search.passages import parse_passages, Passage

_STEP_ID = re.compile(r"\(id: ([^)]+)\)")


def revise(prompt: Prompt, kind: str) -> dict:
    question, answer = prompt.inputs.get("question", ""), prompt.inputs.get("answer", "")
    evidence = {p.id: p for p in parse_passages(prompt.inputs.get("evidence", ""))}
    plan = parse_question(question)
    chain = [evidence[i] for i in _STEP_ID.findall(prompt.inputs.get("answering_steps", "")) if i in evidence]
    if plan is None or not chain:
        return _unchanged(prompt, "The question is not a chain I can rebuild from the evidence.")
    if kind == "too_easy":
        jumped = repr(plan.cue) in prompt.inputs.get("solver_trajectories", "")
        if jumped:  # a hop in front cannot stop a jump straight to the last passage
            revised = (_hide_the_cue(chain, plan, jumped) or _add_hop_behind(chain, plan, evidence, common_only=True)
                       or _add_hop_behind(chain, plan, evidence))
        else:
            revised = _add_hop_in_front(chain, plan, answer, evidence) or _add_hop_behind(chain, plan, evidence)
        if revised:
            return revised
        return _unchanged(prompt, "No retrieved passage adds a hop to this chain.")
    pair = write_chain(chain, plan.answer_type, careful=True)
    if pair is None:
        return _unchanged(prompt, "The evidence no longer supports this chain.")
    return _reply(f"Rebuilt each phrase so its first occurrence leads along {_titles(chain)}.",
                  pair.question, pair.answer, pair.steps)


def _hide_the_cue(chain, plan: ChainQuestion, jumped: bool) -> dict | None:
    """The agent searched the question's last phrase and landed on the answer: ask for a value whose phrase
    is made of common words only, which a keyword search cannot jump to."""
    if not jumped:
        return None
    exclude = {normalize(p.title) for p in chain}
    for value in values_of_type(chain[-1].text, plan.answer_type):
        cue = shortest_unique_phrase(chain[-1].text, value, plan.answer_type, min_words=2)
        if cue and cue != plan.cue and not content_words(cue) and normalize(value.text) not in exclude:
            hidden = replace(plan, cue=cue)
            return _reply(f"The agent jumped to {chain[-1].title} by searching '{plan.cue}'; ask via '{cue}'.",
                          hidden.render(), value.text, steps_for(chain, hidden, value.text))
    return None


def _add_hop_in_front(chain, plan: ChainQuestion, answer: str, evidence: dict[str, Passage]) -> dict | None:
    used = {p.id for p in chain}
    for passage in evidence.values():
        mention = mention_of(passage, chain[0].title) if passage.id not in used else None
        phrase = link_phrase(passage, mention, careful=True) if mention else None
        if phrase and not names_title(passage.title, chain[0].title):
            longer = plan.with_entry(passage.title, phrase)
            return _reply(f"The entry {chain[0].title} was named outright; reach it through {passage.title}.",
                          longer.render(), answer, steps_for([passage, *chain], longer, answer))
    return None


def _add_hop_behind(chain, plan: ChainQuestion, evidence: dict[str, Passage], *, common_only: bool = False
                    ) -> dict | None:
    used = {p.id for p in chain}
    others = [p for p in evidence.values() if p.id not in used]
    for span in entity_spans(chain[-1].text):
        following = next((p for p in others if names_title(span.text, p.title)), None)
        pair = (write_chain([*chain, following], plan.answer_type, careful=True, common_only=common_only)
                if following else None)
        if pair and pair.answer_type == plan.answer_type:  # a harder pair keeps its answer type
            return _reply(f"Go one passage further, to {following.title}, for the answer.",
                          pair.question, pair.answer, pair.steps)
    return None


def _titles(chain) -> str:
    return " -> ".join(p.title for p in chain)


def _reply(reasoning: str, question: str, answer: str, steps: list[str]) -> dict:
    return {"reasoning": reasoning, "revised_question": question, "revised_answer": answer,
            "revised_steps": steps}


def _unchanged(prompt: Prompt, reasoning: str) -> dict:
    raw = prompt.inputs.get("answering_steps", "")
    try:
        steps = [str(step) for step in json.loads(raw)]
    except (json.JSONDecodeError, TypeError):
        steps = [line for line in raw.splitlines() if line.strip()]
    return _reply(reasoning, prompt.inputs.get("question", ""), prompt.inputs.get("answer", ""), steps)
