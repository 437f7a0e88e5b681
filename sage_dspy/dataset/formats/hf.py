"""A Hugging Face dataset folder: one parquet file per split under data/, and README.md, the dataset card.

The card's `configs: data_files` name each split's file, which is how `datasets.load_dataset(folder)` and the
Hub find the splits (huggingface_hub's DatasetCardData writes that YAML; see card.py). The folder can be
uploaded as it is with `huggingface-cli upload <repo> <folder> --repo-type dataset`.
"""

from pathlib import Path

from sage_dspy.dataset.card import dataset_card
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats.files import write_parquet
from sage_dspy.dataset.provenance import gold_answers, provenance

NAME = "hf"
DATA_PATH = "data/{split}.parquet"
CARD_FILE = "README.md"


def row(pair: dict, context: ExportContext) -> dict:
    facts = provenance(pair, context.run_of(pair))
    return {"question": pair["question"], "answer": pair["answer"], "answers": gold_answers(pair),
            "seed_title": pair.get("seed_title", ""), **facts}


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    counts = write_parquet({split: [row(pair, context) for pair in pairs] for split, pairs in splits.items()},
                           folder, name=DATA_PATH)
    pairs = [pair for split_pairs in splits.values() for pair in split_pairs]
    dataset_card(counts, pairs, context, DATA_PATH).save(folder / CARD_FILE)
    return counts
