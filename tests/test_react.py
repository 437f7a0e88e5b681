"""Our ReAct writes exactly the trajectory text dspy.ReAct writes, only cheaper."""

import dspy
import pytest

from sage_dspy.react import ReAct

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
