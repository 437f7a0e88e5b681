"""Writing splits as parquet or JSONL, one file per split, with one schema for all of a format's splits."""

import json
from contextlib import contextmanager
from pathlib import Path

import datasets

RowsBySplit = dict[str, list[dict]]


def write_parquet(rows: RowsBySplit, folder: Path, features: datasets.Features | None = None,
                  name: str = "{split}.parquet") -> dict[str, int]:
    """`datasets.Dataset.to_parquet`, as Search-R1's and verl's own preprocessing scripts write. All splits go
    through one Dataset, so an empty split still gets the schema of the others."""
    folder.mkdir(parents=True, exist_ok=True)
    with _quiet():
        return _write_parquet(rows, folder, features, name)


def _write_parquet(rows: RowsBySplit, folder: Path, features, name: str) -> dict[str, int]:
    flat = [row for split_rows in rows.values() for row in split_rows]
    table = datasets.Dataset.from_list(flat, features=features)
    start = 0
    for split, split_rows in rows.items():
        path = folder / name.format(split=split)
        path.parent.mkdir(parents=True, exist_ok=True)
        # An empty range past the last row is refused by `select` (even for zero rows): select no index instead.
        indices = range(start, start + len(split_rows)) if split_rows else []
        table.select(indices).to_parquet(str(path))
        start += len(split_rows)
    return {split: len(split_rows) for split, split_rows in rows.items()}


def write_jsonl(rows: RowsBySplit, folder: Path) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as sink:
            sink.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in split_rows)
    return {split: len(split_rows) for split, split_rows in rows.items()}


@contextmanager
def _quiet():
    """No "Creating parquet" progress bars on the user's terminal; the setting is restored after."""
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if shown:
            datasets.enable_progress_bars()
