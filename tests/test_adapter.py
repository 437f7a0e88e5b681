"""Our ChatAdapter writes the prompts dspy.ChatAdapter writes and parses what it parses, failures included."""

import enum
from typing import Annotated, Any, Literal, Optional

import dspy
import pytest
from dspy.adapters.utils import parse_value as dspy_parse_value
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy.utils.callback import BaseCallback
from dspy.utils.exceptions import AdapterParseError

from sage_dspy.lm.adapter import ChatAdapter, parse_value
from sage_dspy.lm.choice import adapter_settings
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.lm.react import ReAct
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.signatures import AnswerWithSearch, JudgeAnswer, ProposeQA, ReviseIncorrect, ReviseTooEasy


def signatures(index) -> dict[str, type[dspy.Signature]]:
    """Every signature the pipeline sends: the agents' step and extract signatures, the judge, the revisers
    (ChainOfThought adds reasoning), and an optimizer-style instruction rewrite."""
    search = SearchTool(index)
    generator, solver = ReAct(ProposeQA, tools=[search]), ReAct(AnswerWithSearch, tools=[search])
    return {"generator.react": generator.react.signature, "generator.extract": generator.extract.predict.signature,
            "solver.react": solver.react.signature, "solver.extract": solver.extract.predict.signature,
            "judge": JudgeAnswer, "harden": dspy.ChainOfThought(ReviseTooEasy).predict.signature,
            "repair": dspy.ChainOfThought(ReviseIncorrect).predict.signature,
            "rewritten": ProposeQA.with_instructions("Write a hard question."),
            "string": dspy.Signature("question, context: list[str] -> answer, score: float")}


STEP_INPUTS = {"seed_passage": "Harbor Bridge (id: p-bridge)\nHarbor Bridge is a steel arch bridge.",
               "target_searches": 3, "answer_type": "entity", "question": "Who designed the bridge?",
               "trajectory": "[[ ## thought_0 ## ]]\nlook «it» up\n\n[[ ## tool_args_0 ## ]]\n{\"query\": \"é\"}",
               "answer": "Ada Marlowe", "answering_steps": ["find the bridge", "find its designer"],
               "why_too_easy": "one search", "generator_trajectory": "search 1: 'bridge' -> Harbor Bridge",
               "solver_trajectories": "", "evidence": "\ud83d\ude00 and a lone \ud800 surrogate",
               "gold_answer": "1851", "predicted_answer": "1851.", "context": ["one", "two\nlines"]}


@pytest.mark.parametrize("name", ["generator.react", "generator.extract", "solver.react", "solver.extract", "judge",
                                  "harden", "repair", "rewritten", "string"])
def test_prompts_are_byte_identical_to_dspy(tiny_index, name):
    signature = signatures(tiny_index)[name]
    inputs = {key: value for key, value in STEP_INPUTS.items() if key in signature.input_fields}
    demos = [{**inputs, **{key: "x" for key in signature.output_fields}}]
    for _ in range(2):  # the second call is served from the cache
        assert ChatAdapter().format(signature, demos, inputs) == dspy.ChatAdapter().format(signature, demos, inputs)
        assert (ChatAdapter().format_system_message(signature)
                == dspy.ChatAdapter().format_system_message(signature))


def test_system_message_follows_instruction_and_field_changes():
    base = dspy.Signature("question -> answer")
    variants = [base, base.with_instructions("Answer briefly."),
                base.with_updated_fields("answer", desc="a name"), base.with_updated_fields("answer", type_=int),
                dspy.Signature("question -> answer: Literal['a', 'b']"),
                dspy.Signature("question -> answer: Literal['b', 'a']")]
    messages = [ChatAdapter().format_system_message(signature) for signature in variants]
    assert messages == [dspy.ChatAdapter().format_system_message(signature) for signature in variants]
    assert len(set(messages)) == len(variants)


class Color(enum.Enum):
    RED = "red"


PARSE_CASES = [
    ("plain text", str), ("3", int), (" 3 ", int), ("three", int), ("2.5", float), ("True", bool),
    ("true", bool), ("yes", bool), ("maybe", bool), ('["a", "b"]', list[str]), ("['a', 'b']", list[str]),
    ("[a, b", list[str]), ("a", list[str]), ("", list[str]), ('{"query": "Danube source"}', dict[str, Any]),
    ('{"query": "x", "k": 3}', dict[str, Any]), ("{}", dict[str, Any]), ("query: x", dict[str, Any]),
    ('```json\n{"query": "x"}\n```', dict[str, Any]), ("search", Literal["search", "finish"]),
    ("'finish'", Literal["search", "finish"]), ("Literal[search]", Literal["search", "finish"]),
    ("lookup", Literal["search", "finish"]), ("red", Color), ("blue", Color), ("None", Optional[str]),
    ("text", Optional[str]), ("[1, 2]", list[int]), ('[1, "x"]', list[int]), ("1, 2", tuple[int, int]),
]


def outcome(parse, value, annotation):
    try:
        parsed = parse(value, annotation)
    except Exception as error:
        return ("raises", type(error), str(error))
    return ("value", type(parsed), parsed)


@pytest.mark.parametrize("value, annotation", PARSE_CASES, ids=[f"{v!r}->{a}" for v, a in PARSE_CASES])
def test_parse_value_matches_dspy_values_and_errors(value, annotation):
    for _ in range(2):  # first call builds the TypeAdapter, the second reuses it
        assert outcome(parse_value, value, annotation) == outcome(dspy_parse_value, value, annotation)


COMPLETIONS = {
    "solver.react": [
        "[[ ## next_thought ## ]]\nSearch the bridge.\n\n[[ ## next_tool_name ## ]]\nsearch\n\n"
        "[[ ## next_tool_args ## ]]\n{\"query\": \"Harbor Bridge\"}\n\n[[ ## completed ## ]]",
        "Sure!\n[[ ## next_thought ## ]] inline\n[[ ## next_tool_name ## ]]\n'finish'\n[[ ## next_tool_args ## ]]\n{}",
        # a tool name that is not one of the Literal's
        "[[ ## next_thought ## ]]\nx\n\n[[ ## next_tool_name ## ]]\nlookup\n\n[[ ## next_tool_args ## ]]\n{}",
        "[[ ## next_thought ## ]]\nx\n\n[[ ## next_tool_name ## ]]\nsearch\n\n[[ ## next_tool_args ## ]]\n[1, 2]",
        "[[ ## next_thought ## ]]\nx\n\n[[ ## next_tool_name ## ]]\nsearch",  # a field missing
        '{"next_thought": "x", "next_tool_name": "search", "next_tool_args": {}}',  # JSON: not ChatAdapter's
    ],
    "generator.extract": [
        "[[ ## reasoning ## ]]\nr\n\n[[ ## question ## ]]\nWho?\n\n[[ ## answer ## ]]\nAda\n\n"
        "[[ ## answering_steps ## ]]\n[\"find a\", \"find b\"]\n\n[[ ## completed ## ]]",
        "[[ ## reasoning ## ]]\nr\n[[ ## question ## ]]\nq\n[[ ## answer ## ]]\na\n[[ ## answering_steps ## ]]\n"
        "find a\n[[ ## answer ## ]]\nsecond",  # a repeated header: the first one wins
    ],
    "judge": ["[[ ## is_correct ## ]]\nTrue", "[[ ## is_correct ## ]]\nfalse", "[[ ## is_correct ## ]]\nperhaps", ""],
}


@pytest.mark.parametrize("name, completion", [(n, c) for n, cs in COMPLETIONS.items() for c in cs])
def test_parse_matches_dspy_values_and_errors(tiny_index, name, completion):
    signature = signatures(tiny_index)[name]
    ours = outcome(lambda text, sig: ChatAdapter().parse(sig, text), completion, signature)
    theirs = outcome(lambda text, sig: dspy.ChatAdapter().parse(sig, text), completion, signature)
    assert ours == theirs
    if ours[0] == "raises":
        assert ours[1] is AdapterParseError  # what ChatAdapter.__call__ catches to fall back to JSONAdapter


class ScriptedEngine:
    """Replies in order, and keeps the requests."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []

    def complete(self, request):
        self.requests.append(request)
        text = self.replies.pop(0)
        return Response(id=None, model=request.model, message=Message.assistant([TextPart(text)]),
                        finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=1))


@pytest.mark.parametrize("replies", [
    ['{"answer": "Ada"}', '{"answer": "Ada"}'],  # not ChatAdapter's format: JSONAdapter asks again
    ["[[ ## answer ## ]]\nAda"],
    ["nothing", "still nothing"],  # both fail: AdapterParseError
])
def test_a_whole_call_matches_dspy_including_the_json_fallback(replies):
    """With no parse retries (ours ask again as a fresh rollout: tests/test_reply_faults.py), DSPy's call."""
    results = []
    for adapter in (ChatAdapter(), dspy.ChatAdapter()):
        engine = ScriptedEngine(replies)
        lm = dspy.LM("local/scripted", engine=engine, cache=False)
        lm.parse_retries = 0
        with dspy.context(lm=lm, adapter=adapter):
            results.append((outcome(lambda q, _: dict(dspy.Predict(AnswerWithSearch)(question=q)), "Who?", None),
                            [(r.system, [m.text for m in r.messages]) for r in engine.requests]))
    assert results[0] == results[1]


class Events(BaseCallback):
    def __init__(self):
        self.names = []

    def on_adapter_format_start(self, call_id, instance, inputs):
        self.names.append("format")

    def on_adapter_parse_start(self, call_id, instance, inputs):
        self.names.append("parse")


def test_callbacks_fire_once_per_format_and_parse_as_for_dspy():
    fired = []
    for adapter in (ChatAdapter(), dspy.ChatAdapter()):
        events = Events()
        lm = dspy.LM("local/scripted", engine=ScriptedEngine(["[[ ## answer ## ]]\nAda"]), cache=False)
        with dspy.context(lm=lm, adapter=adapter, callbacks=[events]):
            dspy.Predict(AnswerWithSearch)(question="Who?")
        fired.append(events.names)
    assert fired[0] == fired[1] == ["format", "parse"]


def test_role_lms_install_the_adapter_only_where_none_is_configured():
    lm = dspy.LM("local/scripted", engine=ScriptedEngine([]), cache=False)
    with RoleLMs({"solver": lm}).use("solver"):
        assert type(dspy.settings.adapter) is ChatAdapter and dspy.settings.lm is lm
    configured = dspy.JSONAdapter()
    with dspy.context(adapter=configured), RoleLMs({}).use("judge"):
        assert dspy.settings.adapter is configured
    assert type(adapter_settings()["adapter"]) is ChatAdapter


@pytest.mark.parametrize("value", ["[1, 2]", "[1, \"x\"]"])
def test_unhashable_annotations_parse_as_dspy_parses_them(value):
    annotation = Annotated[list[int], ["unhashable metadata"]]
    assert outcome(parse_value, value, annotation) == outcome(dspy_parse_value, value, annotation)


def test_typed_outputs_never_reach_dspy_parse_value(tiny_index, monkeypatch):
    def slow_parse(value, annotation):
        raise AssertionError(f"dspy's parse_value was used for {annotation}")

    monkeypatch.setattr("sage_dspy.lm.adapter.dspy_parse_value", slow_parse)
    assert parse_value('{"query": "x"}', dict[str, Any]) == {"query": "x"}
    assert parse_value('["a"]', list[str]) == ["a"] and parse_value("True", bool) is True
