"""The offline generator: explores links from the seed with real searches, then writes a chain question.

It is stateless: every turn it replays its own trajectory (the searches and what they returned) to know
where it stands, exactly as an LLM reads its trajectory from the prompt.
"""

from dataclasses import dataclass, field

from sage_dspy.offline.chains import answer_in, link_phrase, mention_of, title_match, write_chain
from sage_dspy.offline.prompt import Prompt, read_trajectory
from sage_dspy.offline.text import entity_spans, normalize, words_before
from sage_dspy.search.passages import parse_passages, Passage

SEARCH_BUDGET = 19  # ReAct's 20 turns, one kept for `finish`
# Instructions the offline generator heeds, as an LLM would: they change how it writes, not what it finds.
CAREFUL_WORDS = ("unambiguous", "first occurrence", "unique phrase")
COMMON_CUE_WORDS = ("common words", "cannot jump")


@dataclass
class Exploration:
    chain: list[Passage]
    target: int
    answer_type: str
    rollout: int
    common_only: bool = False
    tried: set[str] = field(default_factory=set)
    dead: set[str] = field(default_factory=set)
    searches: int = 0
    longest: list[Passage] = field(default_factory=list)  # backing out of a dead end must not lose progress

    def done(self) -> bool:
        exclude = {normalize(p.title) for p in self.chain}
        found = answer_in(self.chain[-1], self.answer_type, exclude, common_only=self.common_only)
        return len(self.chain) >= self.target and found is not None

    def candidates(self) -> list[str]:
        """Names in the newest passage not yet searched, each with words before it that can lead there."""
        end = self.chain[-1]
        known = {normalize(p.title) for p in self.chain} | self.tried
        names = []
        for span in entity_spans(end.text):
            name = normalize(span.text)
            if name and name not in known and words_before(end.text, span.start, 2) and name not in names:
                names.append(name)
        if not names:
            return []
        shift = self.rollout % len(names)  # distinct rollouts explore links in a different order
        return [*names[shift:], *names[:shift]]

    def backward_query(self) -> str | None:
        """When links forward run out, search the first passage's title: passages that mention it can go
        in front of the chain."""
        query = normalize(self.chain[0].title)
        return query if query and query not in self.tried else None

    def settle(self) -> None:
        """Back out of dead ends and of chains long enough but with no answer of the wanted type."""
        while len(self.chain) > 1 and not self.done() and (
            (not self.candidates() and not self.backward_query()) or len(self.chain) >= self.target
        ):
            self.dead.add(self.chain.pop().id)

    def record(self, query: str, hits: list[Passage]) -> None:
        self.searches += 1
        backward = normalize(query) == normalize(self.chain[0].title)
        self.tried.add(normalize(query))
        known = self.dead | {p.id for p in self.chain}
        if backward:
            front = self.chain[0]
            hit = next((h for h in hits if h.id not in known and _links_to(h, front)), None)
            if hit:
                self.chain.insert(0, hit)
        else:
            hit = title_match(hits, query, exact=True)  # an author links only what it can name
            if hit and hit.id not in known:
                self.chain.append(hit)
        if len(self.chain) > len(self.longest):
            self.longest = list(self.chain)
        self.settle()


def _links_to(passage: Passage, target: Passage) -> bool:
    mention = mention_of(passage, target.title)
    return mention is not None and link_phrase(passage, mention, careful=False) is not None


def explore(prompt: Prompt) -> Exploration:
    seed = parse_passages(prompt.inputs.get("seed_passage", ""))
    if not seed:
        raise ValueError("the seed_passage field holds no passage in 'Title (id: ...)' form")
    state = Exploration(
        chain=[seed[0]],
        target=max(1, prompt.int_input("target_searches", 2)),
        answer_type=prompt.inputs.get("answer_type", "entity").strip().strip("'\""),
        rollout=prompt.rollout,
        common_only=any(words in prompt.instructions.lower() for words in COMMON_CUE_WORDS),
    )
    for step in read_trajectory(prompt.inputs.get("trajectory", "")):
        if step.tool == "search":
            state.record(step.query, step.hits)
    return state


def next_action(prompt: Prompt) -> dict:
    state = explore(prompt)
    titles = " -> ".join(p.title for p in state.chain)
    if state.done() or state.searches >= SEARCH_BUDGET or not (state.candidates() or state.backward_query()):
        return {"next_thought": f"The path {titles} is ready to write up.", "next_tool_name": "finish",
                "next_tool_args": {}}
    if not state.candidates():
        query = state.backward_query()
        return {"next_thought": f"Nothing named in {state.chain[-1].title} leads on; find what names "
                                f"{state.chain[0].title}.", "next_tool_name": "search",
                "next_tool_args": {"query": query}}
    name = state.candidates()[0]
    return {"next_thought": f"Path so far: {titles}. Look up '{name}', named in {state.chain[-1].title}.",
            "next_tool_name": "search", "next_tool_args": {"query": name}}


def write(prompt: Prompt) -> dict:
    state = explore(prompt)
    careful = any(word in prompt.instructions.lower() for word in CAREFUL_WORDS)
    chain = list(state.chain) if state.done() else max(state.chain, state.longest, key=len)
    while chain:
        pair = (write_chain(chain, state.answer_type, careful=careful, common_only=state.common_only)
                or write_chain(chain, state.answer_type, careful=careful))
        if pair:
            return {
                "reasoning": f"Followed {len(chain)} passages: " + " -> ".join(p.title for p in chain) + ".",
                "question": pair.question,
                "answer": pair.answer,
                "answering_steps": pair.steps,
            }
        chain.pop()
    return {"reasoning": "No passage on the path states a usable answer.", "question": "", "answer": "",
            "answering_steps": []}
