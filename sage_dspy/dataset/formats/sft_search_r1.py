"""Warm-start SFT for Search-R1: the search agent's shortest correct attempt in the policy's own tags.

Search-R1's rollout (`search_r1/llm_agent/generation.py` at commit a14dc3a4ffc6fe88c1e95038d9738e21ba3f7a06,
`run_llm_loop`, `postprocess_responses`, `execute_predictions`) is one growing text: the model writes up to
`</search>` or `</answer>`; for a search the environment appends `\n\n<information>{results}</information>\n\n`
and the model goes on. So each row is TRL's conversational prompt-completion layout
(`docs/source/dataset_formats.md`): `prompt` is the Search-R1 export's user turn (the same `nq_search.py`
instruction and question, search_r1.py), `completion` one assistant turn holding the whole trajectory,
`<think>thought</think>\n<search> query </search>` then the information block for every search, and
`<think>…</think>\n<answer> answer </answer>` to close; the answer is the attempt's own, which the export's
`ground_truth` lists (provenance.gold_answers), so `qa_em.compute_score_em` scores it 1.

The information blocks are the agent's observations byte for byte (this retriever's passage layout, not
Search-R1's `Doc i(Title: …)`), and SFT trains on them: Search-R1's RL masks them (`info_mask`), TRL's
completion loss cannot mask inside one turn.
"""

from pathlib import Path

from sage_dspy.dataset.chats import Transcript, demonstrations
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats.files import write_parquet
from sage_dspy.dataset.formats.search_r1 import PREFIX, search_r1_question

NAME = "sft-search-r1"


def think(thought: str) -> str:
    return f"<think>{thought.strip()}</think>\n" if thought.strip() else ""


def model_turns(chat: Transcript) -> list[str]:
    """What the policy writes, turn by turn: each search, then the answer (the environment adds the rest)."""
    return [f"{think(call.thought)}<search> {call.query.strip()} </search>" for call in chat.calls] + [
        f"{think(chat.conclusion)}<answer> {chat.answer.strip()} </answer>"]


def information(observation: str) -> str:
    """What Search-R1's environment appends after a search (execute_predictions)."""
    return f"\n\n<information>{observation.strip()}</information>\n\n"


def completion(chat: Transcript) -> str:
    *searches, answer = model_turns(chat)
    return "".join(turn + information(call.observation) for turn, call in zip(searches, chat.calls)) + answer


def row(chat: Transcript) -> dict:
    prompt = PREFIX.format(question=search_r1_question(chat.question))
    return {"prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": completion(chat)}]}


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    """Rows per split; a pair without a usable attempt (chats.transcript) has no row."""
    return write_parquet({split: [row(chat) for chat, _ in demonstrations(pairs, context)]
                          for split, pairs in splits.items()}, folder)
