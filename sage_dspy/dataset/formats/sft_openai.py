"""OpenAI fine-tuning JSONL: the search agent's shortest correct attempt as a chat with tool calls.

The layout of OpenAI's chat fine-tuning examples with tools (platform.openai.com/docs/guides/fine-tuning, the
"tool calling" training example, also in Azure OpenAI's `how-to/fine-tuning-functions` page): one JSON object
per line with `messages` and `tools` only (other top-level keys fail the file check). An assistant turn that
searches carries `tool_calls: [{"id", "type": "function", "function": {"name", "arguments"}}]`, `arguments`
being a JSON *string*; the result follows as `{"role": "tool", "tool_call_id", "content"}`. `tools` is the
list of function schemas (`{"type": "function", "function": {"name", "description", "parameters"}}`).
"""

import json
from pathlib import Path

from sage_dspy.dataset.chats import SYSTEM_PROMPT, Transcript, demonstrations, search_tool_schema
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats.files import write_jsonl
from sage_dspy.method.trajectory import SEARCH_TOOL

NAME = "sft-openai"


def messages(chat: Transcript) -> list[dict]:
    turns = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": chat.question}]
    for number, call in enumerate(chat.calls, start=1):
        call_id = f"call_{number}"
        assistant = {"role": "assistant"}
        if call.thought:
            assistant["content"] = call.thought
        assistant["tool_calls"] = [{"id": call_id, "type": "function", "function": {
            "name": SEARCH_TOOL, "arguments": json.dumps({"query": call.query}, ensure_ascii=False)}}]
        turns += [assistant, {"role": "tool", "tool_call_id": call_id, "content": call.observation}]
    return turns + [{"role": "assistant", "content": chat.answer}]


def row(chat: Transcript, search_k: int) -> dict:
    return {"messages": messages(chat), "tools": [search_tool_schema(search_k)]}


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    """Rows per split; a pair without a usable attempt (chats.transcript) has no row."""
    return write_jsonl({split: [row(chat, k) for chat, k in demonstrations(pairs, context)]
                        for split, pairs in splits.items()}, folder)
