"""Warm-start SFT for verl's search recipe: the shortest correct attempt as calls to verl's own search tool.

Matched against volcengine/verl at commit b178a3cd56f58b2d502255daba591e92833930a7 (as verl.py):
the first two turns are the verl export's prompt (its system message and `<tool_call>` instruction with the
question); each search is an assistant turn calling the `search` tool of `search_tool_config.yaml` with
`{"query_list": [query]}` (verl's `SearchTool.execute` reads `query_list`), its result a `tool` turn holding
what that tool returns, `json.dumps({"result": …})` (`verl/tools/utils/search_r1_like_utils.py`
`perform_single_search_batch`) around the agent's observation; the last turn is
`<think>…</think>\n<answer> answer </answer>`, the answer the attempt's own, which the verl export's
`ground_truth` lists, so `search_r1_like_qa_em.compute_score` scores it 1. The `tools` column is verl's tool
schema exactly as the YAML gives it. The layout and features are TRL's tool-calling ones (sft_trl.py), so TRL's
SFTTrainer renders the calls with the model's chat template, as verl's agent loop does.
"""

import json
from pathlib import Path

import yaml

from sage_dspy.dataset.chats import Transcript, demonstrations
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats import verl
from sage_dspy.dataset.formats.files import write_parquet
from sage_dspy.dataset.formats.search_r1 import search_r1_question
from sage_dspy.dataset.formats.sft_search_r1 import think
from sage_dspy.dataset.formats.sft_trl import FEATURES

NAME = "sft-verl"
TOOL = "search"


def tool_schema() -> dict:
    """verl's `search` tool as its tool config declares it (verl.TOOL_CONFIG, written beside the RL rows)."""
    return yaml.safe_load(verl.TOOL_CONFIG)["tools"][0]["tool_schema"]


def messages(chat: Transcript) -> list[dict]:
    question = search_r1_question(chat.question)
    turns = [{"role": "system", "content": verl.SYSTEM_CONTENT},
             {"role": "user", "content": verl.USER_CONTENT_PREFIX.rstrip("\n") + question}]
    for call in chat.calls:
        turns.append({"role": "assistant", "content": think(call.thought).strip() or None, "tool_calls": [
            {"type": "function", "function": {"name": TOOL, "arguments": {"query_list": [call.query.strip()]}}}]})
        turns.append({"role": "tool", "name": TOOL,
                      "content": json.dumps({"result": call.observation.strip()}, ensure_ascii=False)})
    return turns + [{"role": "assistant", "content": f"{think(chat.conclusion)}<answer> {chat.answer.strip()} "
                                                     "</answer>"}]


def row(chat: Transcript) -> dict:
    return {"messages": messages(chat), "tools": [tool_schema()]}


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    """Rows per split; a pair without a usable attempt (chats.transcript) has no row."""
    return write_parquet({split: [row(chat) for chat, _ in demonstrations(pairs, context)]
                          for split, pairs in splits.items()}, folder, features=FEATURES)
