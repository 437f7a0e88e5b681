"""A kept pair as the search agent solved it: its shortest correct attempt, turn by turn, for the SFT formats.

The record's last round is the pair that was kept; among that round's attempts, the correct one with the fewest
searches (the first of equals) is the demonstration. Each search becomes a tool call with the agent's own
thought, query and observation, the observation byte for byte as the agent read it; ReAct's closing `finish`
step becomes the final answer. An attempt that called anything but the search tool (a tool name the LM made
up) is passed over, since the `tools` list could not describe that call.
"""

from dataclasses import dataclass

import dspy

from sage_dspy.dataset.context import ExportContext
from sage_dspy.method.signatures import AnswerWithSearch
from sage_dspy.method.trajectory import SEARCH_TOOL
from sage_dspy.search.tool import SearchTool

FINISH_TOOL = "finish"  # dspy.ReAct's built-in last step
# What the search agent is told (the signature's instruction); DSPy's own ReAct framing is left out.
SYSTEM_PROMPT = AnswerWithSearch.instructions


@dataclass(frozen=True)
class SearchCall:
    thought: str  # the agent's reasoning before this search
    query: str
    observation: str  # the tool's reply, exactly as the agent saw it


@dataclass(frozen=True)
class Transcript:
    question: str
    calls: list[SearchCall]
    answer: str  # the attempt's own answer (judged correct), not the gold answer
    conclusion: str = ""  # the agent's thought at its closing `finish` step ("" when it wrote none)


def shortest_correct_attempt(record: dict) -> dict | None:
    """The final round's correct attempt with the fewest searches that used only the search tool, or None."""
    if not record.get("rounds"):
        return None
    usable = [a for a in record["rounds"][-1]["attempts"]
              if a["correct"] and not a.get("error") and _only_searches(a["steps"])]
    return min(usable, key=lambda a: a["searches"], default=None)  # min keeps the first of equals


def _only_searches(steps: list[dict]) -> bool:
    return all(step["tool"] == SEARCH_TOOL for step in steps if step["tool"] != FINISH_TOOL)


def transcript(record: dict) -> Transcript | None:
    """The pair's demonstration, or None when no attempt of its last round can be one."""
    attempt = shortest_correct_attempt(record)
    if attempt is None:
        return None
    calls = [SearchCall(step["thought"], step["query"], step["observation"])
             for step in attempt["steps"] if step["tool"] == SEARCH_TOOL]
    closing = [step.get("thought") or "" for step in attempt["steps"] if step["tool"] == FINISH_TOOL]
    return Transcript(record["question"], calls, attempt["answer"], closing[-1] if closing else "")


def search_tool_schema(search_k: int) -> dict:
    """The search tool as the agent was shown it (name, description with its k, arguments), in the
    OpenAI/JSON-schema function layout that both OpenAI's and TRL's `tools` take."""
    return dspy.Tool(SearchTool(None, k=search_k)).format_as_litellm_function_call()


def demonstrations(pairs: list[dict], context: ExportContext) -> list[tuple[Transcript, int]]:
    """Each pair's transcript with the search k of its run (what the tool said it returns), pairs without
    one left out."""
    found = [(transcript(pair), int(context.run_of(pair).settings.get("search_k", 3))) for pair in pairs]
    return [(chat, k) for chat, k in found if chat is not None]
