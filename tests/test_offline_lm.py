"""The offline LM as a component: its prompt reading, its rules, and each role it plays on a tiny real index."""

from typing import Literal

import dspy
import pytest

from sage_dspy.programs import sage
from sage_dspy.method.feedback import Attempt, verdict_for
from sage_dspy.method.generator import Generator
from sage_dspy.method.judge import AnswerJudge
from sage_dspy.lm.roles import RoleLMs, offline_lm
from sage_dspy.method.loop import Round
from sage_dspy.offline.chains import steps_for
from sage_dspy.offline.grammar import ChainQuestion, parse_question
from sage_dspy.offline.judge import same_answer
from sage_dspy.offline.prompt import read_prompt, read_trajectory, write_reply
from sage_dspy.offline.text import entity_spans, value_after, values_of_type
from sage_dspy.method.pair import QAPair
from sage_dspy.search.passages import format_hits
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.reviser import Reviser
from sage_dspy.method.signatures import AnswerWithSearch, ReviseTooEasy
from sage_dspy.method.solver import Solver
from sage_dspy.method.trajectory import Step, search_count

CHAIN_3 = ChainQuestion("Harbor Bridge", ("designed by", "studied at"), "founded in", "date")


def corpus_text(passages) -> str:
    return "\n".join(p.text for p in passages)


# ---------------------------------------------------------------------------------------------- prompt

@pytest.mark.parametrize("adapter, json_reply", [(dspy.ChatAdapter(), False), (dspy.JSONAdapter(), True)])
def test_prompt_round_trip_through_the_real_adapter(adapter, json_reply):
    inputs = {"question": "Q?", "answer": "1851", "answering_steps": ["Search A (id: p-a)", "Search B (id: p-b)"],
              "target_searches": 3, "why_too_easy": "Too easy: one search.", "generator_trajectory": "search 1",
              "solver_trajectories": "attempt 1\nsearch 1: 'x'", "evidence": "A (id: p-a)\nText of A."}
    system, user = (m["content"] for m in adapter.format(ReviseTooEasy, [], inputs))
    prompt = read_prompt(system, user, seed=7, json_mode=False)

    assert prompt.rollout == 7 and prompt.json_reply is json_reply
    assert set(prompt.inputs) == set(inputs)
    assert prompt.inputs["question"] == "Q?" and prompt.int_input("target_searches", 0) == 3
    assert prompt.inputs["evidence"] == "A (id: p-a)\nText of A."
    assert prompt.inputs["solver_trajectories"] == "attempt 1\nsearch 1: 'x'"
    assert prompt.output_types == {"revised_question": "str", "revised_answer": "str", "revised_steps": "list[str]"}
    assert prompt.instructions.startswith("The search agent answered this question correctly")

    values = {"revised_question": "New Q?", "revised_answer": "3,400", "revised_steps": ["one", "two"]}
    reply = write_reply(values, prompt.output_types, json_reply=json_reply)
    assert adapter.parse(ReviseTooEasy, reply) == values
    # a missing value is still written, empty and of its type, so the adapter never fails to parse
    partial = adapter.parse(ReviseTooEasy, write_reply({"revised_answer": "x"}, prompt.output_types,
                                                       json_reply=json_reply))
    assert partial == {"revised_question": "", "revised_answer": "x", "revised_steps": []}


def test_json_mode_of_the_request_forces_a_json_reply():
    system, user = (m["content"] for m in dspy.ChatAdapter().format(AnswerWithSearch, [], {"question": "Q?"}))
    assert not read_prompt(system, user, seed=None, json_mode=False).json_reply
    prompt = read_prompt(system, user, seed=None, json_mode=True)
    assert prompt.json_reply and prompt.rollout == 0


def test_read_trajectory_reads_react_steps_and_the_passages_they_returned(tiny_index):
    react = dspy.ReAct(AnswerWithSearch, tools=[SearchTool(tiny_index)])
    trajectory = {"thought_0": "look", "tool_name_0": "search", "tool_args_0": {"query": "Harbor Bridge"},
                  "observation_0": format_hits(tiny_index.search("Harbor Bridge")),
                  "thought_1": "done", "tool_name_1": "finish", "tool_args_1": {}, "observation_1": "Completed."}
    steps = read_trajectory(react._format_trajectory(trajectory))
    assert [(s.tool, s.query) for s in steps] == [("search", "Harbor Bridge"), ("finish", "")]
    assert [p.id for p in steps[0].hits][0] == "p-bridge"
    assert steps[0].hits[0].text == tiny_index.get("p-bridge").text
    assert steps[1].hits == []


# ---------------------------------------------------------------------------------------------- judge rules

@pytest.mark.parametrize("gold, predicted, same", [
    ("3,400", "3400", True),
    ("3,400", "about 3,400", True),
    ("3,400", "3,500", False),
    ("12 March 1890", "March 12, 1890", True),
    ("12 March 1890", "12 March 1891", False),
    ("12 March 1890", "12 April 1890", False),
    ("1851", "1852", False),
    ("1851", "March 1851", False),  # less specific or more specific is not the same date
    ("Corvel Institute", "the Corvel Institute", True),
    ("Ada Marlowe", "Ada Marlowe Smith", True),  # name token F1 0.8
    ("Ada Marlowe", "Marlowe", False),  # token F1 0.67, just under the bar
    ("Ada Marlowe", "Tobias Wren", False),
    ("Ada Marlowe", "", False),
    ("", "Ada Marlowe", False),
])
def test_same_answer(gold, predicted, same):
    assert same_answer(gold, predicted) is same


def test_the_offline_engine_judges_through_the_real_signature():
    with dspy.context(lm=offline_lm()):
        graded = AnswerJudge().grade("When?", "12 March 1890", Attempt("March 12, 1890", 2, False))
        wrong = AnswerJudge().grade("When?", "12 March 1890", Attempt("March 12, 1891", 2, False))
    assert (graded.correct, graded.judged_by) == (True, "lm")
    assert (wrong.correct, wrong.judged_by) == (False, "lm")


def test_the_offline_engine_cites_a_passage_through_the_real_signature(tiny_passages):
    """"Corvel Technical Institute" is in no passage word for word: the citation call decides, and must name a retrieved id."""
    with dspy.context(lm=offline_lm()):
        found = AnswerJudge().ground("Where?", "Corvel Technical Institute", list(tiny_passages), generator_passages=1)
        missing = AnswerJudge().ground("Where?", "Lune Polytechnic", list(tiny_passages), generator_passages=1)
    assert found.method == "lm" and "Corvel Institute" in {p.title for p in tiny_passages if p.id == found.passage_id}
    assert (missing.passage_id, missing.method) == ("", "none")


# ---------------------------------------------------------------------------------------------- grammar

@pytest.mark.parametrize("plan", [
    CHAIN_3,
    ChainQuestion("Harbor Bridge", (), "traffic in", "date"),
    ChainQuestion("Brown County, Indiana", ("seat is",), "has", "number"),
    ChainQuestion("Halo (song)", ("written by", "born in", "mayor was"), "rector was", "entity"),
])
def test_grammar_render_parse_round_trip(plan):
    question = plan.render()
    assert parse_question(question) == plan
    assert parse_question(f"  {question}\n") == plan
    assert plan.searches_needed == len(plan.relations) + 1


@pytest.mark.parametrize("text", [
    "", "Who designed Harbor Bridge?", "When was Corvel Institute founded?",
    'Start from the passage on "Harbor Bridge". Go on.',  # an entry but no ask
    'which date comes right after "founded in"?',  # an ask but no entry
])
def test_grammar_parse_gives_none_for_other_text(text):
    assert parse_question(text) is None


def test_with_entry_adds_one_hop_in_front():
    longer = CHAIN_3.with_entry("Lune Ferry", "replaced by")
    assert longer.entry_title == "Lune Ferry"
    assert longer.relations == ("replaced by", "designed by", "studied at")
    assert longer.searches_needed == 4 and parse_question(longer.render()) == longer


# ---------------------------------------------------------------------------------------------- text helpers

CORVEL = ("Corvel Institute is a technical university. It was founded in 1851 and has 3,400 students. "
          "Its first rector was Tobias Wren of the Royal Society.")
MIXED = "She was born on 12 March 1890 and died March 3, 1950; 2.5 km and 1999 runs, 12,000 people."


@pytest.mark.parametrize("text, answer_type, expected", [
    (CORVEL, "date", ["1851"]),
    (CORVEL, "number", ["3,400"]),  # the year is a date, never a number
    (CORVEL, "entity", ["Corvel Institute", "Tobias Wren of the Royal Society"]),  # "Its" is no name
    (MIXED, "date", ["12 March 1890", "March 3, 1950", "1999"]),
    (MIXED, "number", ["2.5", "12,000"]),
    ("no values here at all", "number", []),
])
def test_values_of_type(text, answer_type, expected):
    assert [span.text for span in values_of_type(text, answer_type)] == expected


@pytest.mark.parametrize("phrase, answer_type, expected", [
    ("founded in", "date", "1851"),
    ("and has", "number", "3,400"),
    ("rector was", "entity", "Tobias Wren of the Royal Society"),
    ("FOUNDED IN", "date", "1851"),  # case-insensitive
    ("founded in", "number", None),  # the next number is not right after the phrase
    ("rector", "entity", None),  # "was" stands between
    ("nowhere", "date", None),
])
def test_value_after(phrase, answer_type, expected):
    span = value_after(CORVEL, phrase, answer_type)
    assert (span.text if span else None) == expected
    if span:
        assert CORVEL[span.start:span.end] == span.text


@pytest.mark.parametrize("text, names", [
    ("It was designed by Ada Marlowe and opened in 1932.", ["Ada Marlowe"]),
    ("The Harbor Bridge spans the River Lune.", ["Harbor Bridge", "River Lune"]),
    ("In March, the Bank of England met the Tate.", ["Bank of England", "Tate"]),  # months are no names
    ("It was founded by Mira Holt and Tobias Wren.", ["Mira Holt and Tobias Wren"]),  # "and" is a connector
    ("nothing capitalised here", []),
])
def test_entity_spans(text, names):
    spans = entity_spans(text)
    assert [s.text for s in spans] == names
    assert all(text[s.start:s.end] == s.text for s in spans)


# ---------------------------------------------------------------------------------------------- the roles

@pytest.fixture
def offline():
    with dspy.context(lm=offline_lm()):
        yield


def generate(tiny_index, target=3, answer_type="date"):
    tool = SearchTool(tiny_index)
    pair = Generator(tool)(seed=tiny_index.get("p-bridge"), target_searches=target, answer_type=answer_type).pair
    return pair, tool


def test_generator_searches_and_writes_a_chain_question_answered_from_the_corpus(offline, tiny_index, tiny_passages):
    pair, tool = generate(tiny_index)
    assert tool.calls > 0
    assert search_count(pair.trajectory) == tool.calls  # every search it made is in its trajectory
    plan = parse_question(pair.question)
    assert plan == CHAIN_3
    assert pair.answer == "1851" and pair.answer in corpus_text(tiny_passages)
    assert pair.cited_ids == ["p-bridge", "p-ada", "p-corvel"]
    assert pair.origin == "generated" and pair.answer_type == "date"


@pytest.mark.parametrize("target, answer_type, answer", [(2, "entity", "Corvel Institute"), (3, "number", "3,400")])
def test_generator_follows_the_target_and_answer_type(offline, tiny_index, tiny_passages, target, answer_type, answer):
    pair, _ = generate(tiny_index, target, answer_type)
    plan = parse_question(pair.question)
    assert plan.searches_needed == target and plan.answer_type == answer_type
    assert pair.answer == answer and pair.answer in corpus_text(tiny_passages)


def test_solver_walks_the_chain_one_search_per_passage(offline, tiny_index):
    pair, _ = generate(tiny_index)
    tool = SearchTool(tiny_index)
    careful, hurried = Solver(tool).attempt(pair.question, k=2)
    assert careful.answer == pair.answer == "1851"
    assert careful.searches == parse_question(pair.question).searches_needed == 3
    assert [s.query for s in careful.steps if s.tool == "search"] == ["Harbor Bridge", "Ada Marlowe",
                                                                      "Corvel Institute"]
    # an odd rollout tries one broad search first; here the decoy college answers it, wrongly
    assert (hurried.answer, hurried.searches) == ("1790", 1)
    assert tool.calls == careful.searches + hurried.searches
    graded = [AnswerJudge().grade(pair.question, pair.answer, a) for a in (careful, hurried)]
    assert [(a.correct, a.judged_by) for a in graded] == [(True, "exact"), (False, "lm")]


def test_roles_are_deterministic(tiny_index):
    def once():
        with dspy.context(lm=offline_lm()):
            pair, _ = generate(tiny_index)
            attempts = Solver(SearchTool(tiny_index)).attempt(pair.question, k=3)
        return pair, attempts

    assert once() == once()


def test_unknown_signature_gets_valid_typed_values():
    class Describe(dspy.Signature):
        """Describe the topic in one sentence. Then more."""

        topic: str = dspy.InputField()
        summary: str = dspy.OutputField()
        count: int = dspy.OutputField()
        score: float = dspy.OutputField()
        flag: bool = dspy.OutputField()
        tags: list[str] = dspy.OutputField()
        weights: dict[str, int] = dspy.OutputField()
        mode: Literal["fast", "slow"] = dspy.OutputField()

    for adapter in (dspy.ChatAdapter(use_json_adapter_fallback=False), dspy.JSONAdapter()):
        with dspy.context(lm=offline_lm(), adapter=adapter):
            result = dspy.Predict(Describe)(topic="bridges")
            again = dspy.Predict(Describe)(topic="bridges")
        assert isinstance(result.summary, str) and result.summary
        assert isinstance(result.count, int) and isinstance(result.score, float)
        assert isinstance(result.flag, bool) and result.tags == [] and result.weights == {}
        assert result.mode in ("fast", "slow")
        assert result.toDict() == again.toDict()


# ---------------------------------------------------------------------------------------------- reviser

def too_easy_round(tiny_index, plan: ChainQuestion, chain_ids: list[str], answer: str, queries: list[str]) -> Round:
    chain = [tiny_index.get(i) for i in chain_ids]
    seen = [Step("look", "search", q, format_hits(tiny_index.search(q))) for q in queries]
    pair = QAPair(plan.render(), answer, plan.answer_type, steps_for(chain, plan, answer), "generated", seen)
    # the shortcut searched a title, not the question's cue, so the reviser must change the path itself
    jump = chain[-1].title
    shortcut = [Attempt(answer, 1, True, [Step("jump", "search", jump, format_hits(tiny_index.search(jump)))],
                        judged_by="exact")]
    return Round(0, pair, shortcut, verdict_for(shortcut, plan.searches_needed + 1))


def test_reviser_hardens_by_adding_a_retrieved_hop_in_front(offline, tiny_index):
    plan = ChainQuestion("Harbor Bridge", ("designed by",), "studied at", "entity")
    last = too_easy_round(tiny_index, plan, ["p-bridge", "p-ada"], "Corvel Institute", ["Harbor Bridge", "Ada Marlowe"])
    revised = Reviser()(seed=tiny_index.get("p-bridge"), target_searches=3, answer_type="entity", rounds=[last])
    assert revised.origin == "revised:too_easy"
    assert parse_question(revised.question) == plan.with_entry("Lune Ferry", "replaced by")
    assert revised.answer == "Corvel Institute"
    assert revised.cited_ids == ["p-ferry", "p-bridge", "p-ada"]


def test_reviser_hardening_keeps_the_answer_type(offline, tiny_index):
    # No retrieved passage names Lune Ferry, so no hop fits in front; behind, Ada Marlowe's passage has no date.
    plan = ChainQuestion("Lune Ferry", ("replaced by",), "traffic in", "date")
    last = too_easy_round(tiny_index, plan, ["p-ferry", "p-bridge"], "1932", ["Harbor Bridge"])
    revised = Reviser()(seed=tiny_index.get("p-ferry"), target_searches=3, answer_type="date", rounds=[last])
    assert parse_question(revised.question).answer_type == "date"
    assert [s.text for s in values_of_type(revised.answer, "date")] == [revised.answer]


# ---------------------------------------------------------------------------------------------- the loop

@pytest.mark.parametrize("target, answer_type, answer", [
    (2, "entity", "Corvel Institute"), (3, "date", "1851"), (3, "number", "3,400"), (3, "entity", "Tobias Wren"),
])
def test_sage_loop_with_the_offline_lm_accepts_a_pair(tiny_index, tiny_passages, target, answer_type, answer):
    lms = RoleLMs.from_specs({role: "offline" for role in ("generator", "solver", "judge", "reviser")})
    program = sage.build(SearchTool(tiny_index), k=4, max_rounds=3, lms=lms)
    result = program(seed=tiny_index.get("p-bridge"), target_searches=target, answer_type=answer_type)
    assert result.verdict.accepted and result.verdict.searches == target
    assert result.pair.answer == answer and answer in corpus_text(tiny_passages)
    plan = parse_question(result.pair.question)
    assert plan.searches_needed == target and plan.answer_type == answer_type
    # even rollouts walk every hop; odd ones try the question's last phrase first and hit a decoy
    attempts = result.rounds[-1].attempts
    assert [(a.correct, a.searches) for a in attempts[::2]] == [(True, target)] * 2
    assert not any(a.correct for a in attempts[1::2])
    assert result.verdict.avg_at_k == 0.5
