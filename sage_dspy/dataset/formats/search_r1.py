"""Search-R1's training parquet, one row per kept pair, as its own preprocessing writes it.

Matched against PeterGriffinJin/Search-R1 at commit a14dc3a4ffc6fe88c1e95038d9738e21ba3f7a06:
- `scripts/data_process/nq_search.py` (and `qa_search_train_merge.py`, the same code): `make_prefix` with
  template 'base' is the instruction below; the question is stripped and given a '?' if it lacks one; each
  row is `data_source`, `prompt` ([{"role": "user", "content": prefix}]), `ability: "fact-reasoning"`,
  `reward_model: {"style": "rule", "ground_truth": {"target": golden_answers}}`, `extra_info: {"split",
  "index"}` (index within the split), after the source columns `id`, `question`, `golden_answers` that
  `datasets.map` keeps; written with `Dataset.to_parquet` to `<split>.parquet`.
- `verl/trainer/main_ppo.py` `_select_rm_score_fn`: only the seven names in DATA_SOURCES are accepted, and
  each selects `qa_em.compute_score_em` (exact match on the last <answer>...</answer>, after
  `normalize_answer`, against any of `ground_truth["target"]`); `main_ppo_format.py` accepts the same seven
  (plus two) for `qa_em_format`. The name also labels validation scores (`val/test_score/<data_source>` in
  `verl/trainer/ppo/ray_trainer.py`).
SAGE's provenance rides along in `extra_info` (provenance.provenance), which Search-R1 passes through unread.
"""

from pathlib import Path

from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats.files import write_parquet
from sage_dspy.dataset.provenance import gold_answers, pair_id, provenance

NAME = "search-r1"
DATA_SOURCES = ("nq", "triviaqa", "popqa", "hotpotqa", "2wikimultihopqa", "musique", "bamboogle")
DEFAULT_DATA_SOURCE = "hotpotqa"  # multi-hop questions over passages, the nearest of the seven to SAGE's pairs
ABILITY = "fact-reasoning"

# make_prefix(dp, template_type='base') in scripts/data_process/nq_search.py, character for character.
PREFIX = ("Answer the given question. "
          "You must conduct reasoning inside <think> and </think> first every time you get new information. "
          "After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query "
          "</search> and it will return the top searched results between <information> and </information>. "
          "You can search as many times as your want. "
          "If you find no further external knowledge needed, you can directly provide the answer inside <answer> "
          "and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. "
          "Question: {question}\n")


def search_r1_question(question: str) -> str:
    """nq_search.py's process_fn: strip, and end with a question mark."""
    question = question.strip()
    return question if question.endswith("?") else question + "?"


def reward_model(pair: dict) -> dict:
    return {"style": "rule", "ground_truth": {"target": gold_answers(pair)}}


def row(pair: dict, split: str, index: int, context: ExportContext) -> dict:
    question = search_r1_question(pair["question"])
    return {
        "id": pair_id(pair),
        "question": question,
        "golden_answers": gold_answers(pair),
        "data_source": context.data_source,
        "prompt": [{"role": "user", "content": PREFIX.format(question=question)}],
        "ability": ABILITY,
        "reward_model": reward_model(pair),
        "extra_info": {"split": split, "index": index, **provenance(pair, context.run_of(pair))},
    }


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    rows = {split: [row(pair, split, index, context) for index, pair in enumerate(pairs)]
            for split, pairs in splits.items()}
    return write_parquet(rows, folder)
