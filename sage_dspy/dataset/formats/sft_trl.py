"""TRL's tool-calling SFT layout: the search agent's shortest correct attempt, `messages` plus a `tools` column.

Matched against huggingface/trl at commit f2cd57710ae345ea6428ae95363267fcf38a3dc8, `docs/source/
dataset_formats.md` ("Tool Calling") and `docs/source/sft_trainer.md` ("Tool Calling with SFT"): an assistant
turn carries `tool_calls: [{"type": "function", "function": {"name", "arguments"}}]` with `arguments` a JSON
*object* (unlike OpenAI's string); the result is `{"role": "tool", "name", "content"}`; the `tools` column
holds JSON schemas as `transformers.utils.get_json_schema` writes them. The features are the ones that page
gives, `Json()` for tool calls and tools (arbitrary JSON, not structs of fixed fields), plus the tool
message's `name`; written as parquet, whose schema metadata keeps those features for `load_dataset`.
"""

from pathlib import Path

from datasets import Features, Json, List, Value

from sage_dspy.dataset.chats import SYSTEM_PROMPT, Transcript, demonstrations, search_tool_schema
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats.files import write_parquet
from sage_dspy.method.trajectory import SEARCH_TOOL

NAME = "sft-trl"
FEATURES = Features({
    "messages": List({"role": Value("string"), "content": Value("string"), "tool_calls": List(Json()),
                      "name": Value("string")}),
    "tools": List(Json()),
})


def messages(chat: Transcript) -> list[dict]:
    turns = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": chat.question}]
    for call in chat.calls:
        turns.append({"role": "assistant", "content": call.thought or None, "tool_calls": [
            {"type": "function", "function": {"name": SEARCH_TOOL, "arguments": {"query": call.query}}}]})
        turns.append({"role": "tool", "name": SEARCH_TOOL, "content": call.observation})
    return turns + [{"role": "assistant", "content": chat.answer}]


def row(chat: Transcript, search_k: int) -> dict:
    return {"messages": messages(chat), "tools": [search_tool_schema(search_k)]}


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    """Rows per split; a pair without a usable attempt (chats.transcript) has no row."""
    return write_parquet({split: [row(chat, k) for chat, k in demonstrations(pairs, context)]
                          for split, pairs in splits.items()}, folder, features=FEATURES)
