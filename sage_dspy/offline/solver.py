"""The offline search agent: it sees only the question and answers from what its searches return.

A chain question is walked one search per passage. Odd rollouts are hurried: they first try one broad
search and answer from it if any passage shows the asked-for phrase, which is how a shortcut looks (a
correct shortcut makes a pair too easy; a wrong one is a failed attempt). Other questions get a generic
search-then-bridge strategy.
"""

from dataclasses import dataclass

from sage_dspy.offline.chains import title_match
from sage_dspy.offline.grammar import ChainQuestion, parse_question
from sage_dspy.offline.prompt import Prompt, ToolStep, read_trajectory
from sage_dspy.offline.text import content_words, entity_spans, normalize, value_after, values_of_type

GENERIC_SEARCHES = 3


@dataclass(frozen=True)
class Progress:
    next_query: str | None  # None: ready to answer
    answer: str
    note: str


def next_action(prompt: Prompt) -> dict:
    progress = _progress(prompt)
    if progress.next_query is None:
        return {"next_thought": progress.note, "next_tool_name": "finish", "next_tool_args": {}}
    return {"next_thought": progress.note, "next_tool_name": "search",
            "next_tool_args": {"query": progress.next_query}}


def answer(prompt: Prompt) -> dict:
    progress = _progress(prompt)
    return {"reasoning": progress.note, "answer": progress.answer or "unknown"}


def _progress(prompt: Prompt) -> Progress:
    question = prompt.inputs.get("question", "")
    searches = [s for s in read_trajectory(prompt.inputs.get("trajectory", "")) if s.tool == "search"]
    plan = parse_question(question)
    if plan is None:
        return _generic(question, searches)
    return _walk_chain(plan, searches, hurried=prompt.rollout % 2 == 1)


def _walk_chain(plan: ChainQuestion, searches: list[ToolStep], hurried: bool) -> Progress:
    done = 0
    if hurried:
        broad = plan.cue  # a guess from the question's last phrase alone
        if done == len(searches):
            return Progress(broad, "", f"Try a broad search for '{broad}' first.")
        done += 1
        for hit in searches[0].hits:
            value = value_after(hit.text, plan.cue, plan.answer_type)
            if value:
                return Progress(None, value.text, f"{hit.title} gives '{value.text}' after '{plan.cue}'.")
    names = [plan.entry_title]
    current = None
    while True:
        if done == len(searches):
            return Progress(names[-1], "", f"Look up '{names[-1]}'.")
        current = title_match(searches[done].hits, names[-1]) or (searches[done].hits or [None])[0]
        done += 1
        if current is None:
            return Progress(None, "", f"Nothing found for '{names[-1]}'.")
        hop = len(names) - 1
        if hop == len(plan.relations):
            value = value_after(current.text, plan.cue, plan.answer_type)
            found = value.text if value else ""
            return Progress(None, found, f"{current.title} gives '{found}' after '{plan.cue}'.")
        name = value_after(current.text, plan.relations[hop], "entity")
        if name is None:
            return Progress(None, "", f"{current.title} has no name after '{plan.relations[hop]}'.")
        names.append(name.text)


def _generic(question: str, searches: list[ToolStep]) -> Progress:
    """Search the question, then bridge through names the best passages mention; answer by overlap."""
    wanted = _expected_type(question)
    if not searches:
        return Progress(question, "", "Search the question itself first.")
    seen = [hit for step in searches for hit in step.hits]
    if len(searches) < GENERIC_SEARCHES:
        asked = {normalize(s.query) for s in searches} | {normalize(question)}
        in_question = {normalize(span.text) for span in entity_spans(question)}
        for hit in searches[-1].hits[:1]:
            for span in entity_spans(hit.text):
                name = normalize(span.text)
                if name not in in_question and name not in asked and name != normalize(hit.title):
                    query = f"{span.text} {' '.join(content_words(question)[:4])}"
                    return Progress(query, "", f"Bridge through '{span.text}', named in {hit.title}.")
    return _best_value(question, seen, wanted)


def _expected_type(question: str) -> str:
    lowered = question.lower()
    if lowered.startswith("when") or "what year" in lowered or "which year" in lowered or "date" in lowered:
        return "date"
    if lowered.startswith(("how many", "how much")) or "number of" in lowered:
        return "number"
    return "entity"


def _best_value(question: str, passages, wanted: str) -> Progress:
    words = set(content_words(question))
    in_question = normalize(question)
    best, best_score = None, -1.0
    for rank, passage in enumerate(passages):
        overlap = len(words & set(content_words(passage.title + " " + passage.text)))
        for value in values_of_type(passage.text, wanted):
            if normalize(value.text) in in_question:
                continue
            score = overlap - 0.01 * rank
            if score > best_score:
                best, best_score = (value.text, passage.title), score
            break
    if best is None:
        return Progress(None, "", "No passage states a value of the asked type.")
    return Progress(None, best[0], f"{best[1]} states '{best[0]}'.")
