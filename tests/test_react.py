"""Our ReAct writes exactly the trajectory text dspy.ReAct writes, only cheaper."""

import json

import dspy
import pydantic
import pytest
from dspy.utils.exceptions import format_error_for_lm

from sage_dspy.lm.adapter import ChatAdapter
from sage_dspy.lm.react import ReAct, Tool
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.signatures import ProposeQA

TRAJECTORIES = [
    {},
    {"thought_0": "look it up", "tool_name_0": "search", "tool_args_0": {"query": "Ada Marlowe"},
     "observation_0": "[1] Ada Marlowe (id: p1)\nAda Marlowe was an engineer.\n\n[2] X (id: p2)\ntext"},
    {"thought_0": "é ünïcode «quotes»", "tool_name_0": "finish", "tool_args_0": {}, "observation_0": "Completed."},
    {"thought_0": "", "tool_name_0": "search", "tool_args_0": {"query": "a", "k": 3, "deep": True, "x": None},
     "observation_0": "Execution error in search: boom"},
    {"thought_0": "t", "tool_name_0": "search", "tool_args_0": {"query": "q"},
     "observation_0": [{"id": "p1", "title": "T"}]},  # a list: DSPy numbers it, so DSPy formats it
    {"thought_0": 3, "tool_name_0": "search", "tool_args_0": {"nested": {"a": [1, 2.5, "b"]}}, "observation_0": 1.5},
]


def dspy_text(trajectory: dict, adapter) -> str:
    with dspy.context(adapter=adapter):
        return dspy.ReAct._format_trajectory(None, trajectory)


@pytest.mark.parametrize("trajectory", TRAJECTORIES)
@pytest.mark.parametrize("adapter", [None, dspy.ChatAdapter(), dspy.JSONAdapter(), dspy.XMLAdapter()],
                         ids=["default", "chat", "json", "xml"])
def test_trajectory_text_is_byte_identical_to_dspy(trajectory, adapter):
    react = ReAct("question -> answer", tools=[])
    with dspy.context(adapter=adapter):
        ours = react._format_trajectory(trajectory)
    assert ours == dspy_text(trajectory, adapter)


@pytest.mark.parametrize("trajectory", TRAJECTORIES)
def test_trajectory_text_under_our_adapter_is_dspy_chat_adapter_text(trajectory):
    react = ReAct("question -> answer", tools=[])
    with dspy.context(adapter=ChatAdapter()):
        ours = react._format_trajectory(trajectory)
    assert ours == dspy_text(trajectory, dspy.ChatAdapter())


# ---------------------------------------------------------------- the tool wrapper: dspy.Tool's checks, built once

class Item(pydantic.BaseModel):
    name: str
    size: int = 1


def typed(query: str, k: int = 3, tags: list[str] | None = None, item: Item | None = None, anything=None) -> str:
    """A tool with every kind of argument the agents might be given."""
    return f"{query}|{k}|{tags}|{item}|{anything}"


def open_ended(query: str, **extra) -> str:
    """A tool that takes extra keyword arguments."""
    return f"{query}|{sorted(extra)}"


TOOL_ARGS = [
    {"query": "Harbor Bridge"}, {}, {"query": "x", "k": 2}, {"query": "x", "k": 2.0}, {"query": "x", "k": "2"},
    {"query": 3}, {"query": None}, {"q": "x"}, {"query": "x", "tags": ["a", "b"]}, {"query": "x", "tags": "a"},
    {"query": "x", "item": {"name": "n"}}, {"query": "x", "item": {"size": 2}}, {"query": "x", "anything": [1]},
    {"query": "x", "k": True},
]


def outcome(call):
    try:
        return ("value", call())
    except Exception as error:
        return ("raises", type(error), str(error))


@pytest.mark.parametrize("func", [typed, open_ended], ids=["typed", "open_ended"])
@pytest.mark.parametrize("args", TOOL_ARGS, ids=[json.dumps(a) for a in TOOL_ARGS])
def test_tool_checks_and_parses_arguments_as_dspy_tool_does(func, args):
    ours, theirs = Tool(func), dspy.Tool(func)
    assert str(ours) == str(theirs)
    for _ in range(2):  # the second call reuses the cached validator and wrapper
        assert outcome(lambda: ours._validate_and_parse_args(**args)) == \
            outcome(lambda: theirs._validate_and_parse_args(**args))
        assert outcome(lambda: ours(**args)) == outcome(lambda: theirs(**args))


def test_react_wraps_plain_tools_and_writes_dspy_react_instructions(tiny_index):
    search = SearchTool(tiny_index)
    ours, theirs = ReAct(ProposeQA, tools=[search]), dspy.ReAct(ProposeQA, tools=[search])
    assert type(ours.tools["search"]) is Tool and ours.tools["search"](query="Harbor Bridge") == search("Harbor Bridge")
    assert ours.react.signature.instructions == theirs.react.signature.instructions
    assert ours.react.signature.fields.keys() == theirs.react.signature.fields.keys()
    given = dspy.Tool(search)
    assert ReAct(ProposeQA, tools=[given]).tools["search"] is given  # a dspy.Tool is used as given


def test_an_invalid_tool_call_reads_as_dspy_error_to_the_agent(tiny_index):
    """The observation ends with DSPy's error line; its traceback shows one more frame (ours)."""
    observations = []
    for tool in (Tool(SearchTool(tiny_index)), dspy.Tool(SearchTool(tiny_index))):
        try:
            tool(query="x", k=5)
        except ValueError as error:
            observations.append(format_error_for_lm(error, traceback_frames=5).splitlines()[-1])
    assert observations == ["ValueError: Arg k is not in the tool's args."] * 2


def test_valid_arguments_never_reach_dspy_tool_check(tiny_index, monkeypatch):
    def slow_check(self, **kwargs):
        raise AssertionError("dspy.Tool's per-call check was used")

    monkeypatch.setattr(dspy.Tool, "_validate_and_parse_args", slow_check)
    assert Tool(typed)(query="x", k=2, tags=["a"], item={"name": "n"}) == "x|2|['a']|name='n' size=1|None"
    assert Tool(SearchTool(tiny_index))(query="Harbor Bridge").startswith("[1] Harbor Bridge")
