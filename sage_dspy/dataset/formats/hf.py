"""A Hugging Face dataset folder: one parquet file per split under data/, and README.md, the dataset card.

Splits are found by file name, as `push_to_hub` names them (`data/<split>-00000-of-00001.parquet`, which
`datasets.data_files` matches with its sharded-split pattern for any split name, and so does the Hub). The card
has no `configs:` block on purpose: with one, `datasets.load_dataset(folder)` keys its cache on the folder's
name and the split patterns only (`load.LocalDatasetModuleFactory` hashes the unresolved patterns), so every
export folder named `hf`, and every re-export into one, loads the first one's cached rows. Without it the key
hashes the resolved files with their modification times: each export loads its own rows. The folder can be
uploaded as it is with `huggingface-cli upload <repo> <folder> --repo-type dataset`.
"""

from pathlib import Path

from sage_dspy.dataset.card import dataset_card
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats.files import write_parquet
from sage_dspy.dataset.provenance import gold_answers, provenance

NAME = "hf"
DATA_PATH = "data/{split}-00000-of-00001.parquet"
CARD_FILE = "README.md"


def row(pair: dict, context: ExportContext) -> dict:
    facts = provenance(pair, context.run_of(pair))
    return {"question": pair["question"], "answer": pair["answer"], "answers": gold_answers(pair),
            "seed_title": pair.get("seed_title", ""), **facts}


def write(splits: dict[str, list[dict]], folder: Path, context: ExportContext) -> dict[str, int]:
    counts = write_parquet({split: [row(pair, context) for pair in pairs] for split, pairs in splits.items()},
                           folder, name=DATA_PATH)
    pairs = [pair for split_pairs in splits.values() for pair in split_pairs]
    dataset_card(counts, pairs, context).save(folder / CARD_FILE)
    return counts
