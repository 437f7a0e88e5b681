"""`export` as a library call: finished run folders in, one folder per training format out.

Everything is written into a staging folder beside `out` and moved into place with one rename, so a failure
leaves either the previous export or nothing, never half of one (a full disk included). An existing `out` is
replaced only when it holds an earlier export and nothing else (outputs.py's rule: a run copied into it would
go with it); any other non-empty folder, and a folder inside another output of sage's, is refused.
"""

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.outputs import EXPORT, check_output_folder, disk_full_as_one_line, foreign_entries, mark
from sage_dspy.dataset.benchmarks import Benchmark
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.decontaminate import find_contamination
from sage_dspy.dataset.dedup import remove_near_duplicates
from sage_dspy.dataset.formats import hf, search_r1, sft_openai, sft_search_r1, sft_trl, sft_verl, verl
from sage_dspy.dataset.pairs import read_runs
from sage_dspy.dataset.settings import TrainerSettings, trainer_settings
from sage_dspy.dataset.splits import assign, too_small

FORMATS = {module.NAME: module for module in (search_r1, verl, sft_openai, sft_trl, sft_search_r1, sft_verl, hf)}
MANIFEST = "export.json"
REMOVED = "removed.jsonl"  # one line per pair left out: near-duplicates, then benchmark matches
MIN_PER_SPLIT = 1  # an empty split cannot be loaded or uploaded (splits.too_small)
BUNDLED_LICENSE = "cc0-1.0"  # sage_dspy/data/README.md: the bundled corpus is CC0-1.0
UNKNOWN_LICENSE = "unknown"


class ExportError(SageError, ValueError):
    """Export options or an output folder that cannot be used."""


@dataclass(frozen=True)
class ExportResult:
    out: Path
    splits: dict[str, int]  # pairs per split
    rows: dict[str, dict[str, int]]  # per format, rows per split (SFT formats skip pairs without a demonstration)
    removed: dict[str, int] = field(default_factory=dict)  # pairs left out per rule (removed.jsonl has each)
    settings: TrainerSettings | None = None  # what the RL recipes must allow for these pairs (settings.py)


def parse_formats(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown or not chosen:
        raise ExportError(f"unknown export format(s) {', '.join(unknown) or repr(text)}: choose from "
                          f"{', '.join(FORMATS)} (comma-separated)")
    return chosen


def check_data_source(name: str) -> str:
    if name not in search_r1.DATA_SOURCES:
        raise ExportError(f"unknown data source {name!r}: Search-R1's trainer accepts only "
                          f"{', '.join(search_r1.DATA_SOURCES)}")
    return name


def select_pairs(pairs: list[dict], benchmarks: list[Benchmark] = ()) -> tuple[list[dict], list[dict]]:
    """The pairs that go into the training set, and one removal per pair left out: near-duplicates first
    (within and across runs; the first pair of each group stays), then pairs that match an item of
    `benchmarks`. Each removal names the pair, the rule, and the pair it duplicates or the benchmark item."""
    unique, duplicates = remove_near_duplicates(pairs)
    removals = [{**duplicate.to_dict(), "removed": _identity(duplicate.removed),
                 "duplicate_of": _identity(duplicate.kept)} for duplicate in duplicates]
    if not benchmarks:
        return unique, removals
    report = find_contamination(unique, list(benchmarks))
    flags: dict[int, list] = {}
    for flag in report.flags:
        flags.setdefault(flag.record_index, []).append(flag)
    for index in sorted(flags):
        first = flags[index][0]  # the first benchmark given, and its strongest check (CHECKS order)
        removals.append({"rule": f"contamination: {first.check}", "similarity": round(first.similarity, 4),
                         "removed": _identity(unique[index]), "benchmark": first.benchmark,
                         "item": first.item_index, "item_question": first.item_question, "evidence": first.evidence,
                         "matches": [{"benchmark": f.benchmark, "item": f.item_index, "check": f.check}
                                     for f in flags[index]]})
    return [pair for index, pair in enumerate(unique) if index not in flags], removals


def _identity(pair: dict) -> dict:
    return {key: pair.get(key, "") for key in ("source_run", "seed_id", "question", "answer")}


def removal_counts(removals: list[dict]) -> dict[str, int]:
    """Pairs removed per rule, in the order rules first removed one."""
    counts: dict[str, int] = {}
    for removal in removals:
        counts[removal["rule"]] = counts.get(removal["rule"], 0) + 1
    return counts


def export(run_dirs: list[Path], out: Path, formats: tuple[str, ...], ratios: dict[str, float], *,
           split_seed: int = 0, data_source: str = search_r1.DEFAULT_DATA_SOURCE,
           license: str | None = None, benchmarks: list[Benchmark] = (),
           min_per_split: int = MIN_PER_SPLIT) -> ExportResult:
    """Write each format for the kept pairs of `run_dirs`, split by `ratios` without leaks, into `out`;
    near-duplicates and pairs matching `benchmarks` are left out and listed in removed.jsonl. A split with
    fewer than `min_per_split` pairs (or rows of a format) is refused and nothing is written."""
    check_data_source(data_source)
    if min_per_split < 1:
        raise ExportError(f"--min-per-split {min_per_split} would allow empty splits; give 1 or more")
    check_out(Path(out))
    runs, pairs = read_runs([Path(d) for d in run_dirs])
    pairs, removals = select_pairs(pairs, benchmarks)
    if not pairs:
        raise ExportError(f"every one of the {len(removals)} kept pairs was removed as a near-duplicate or "
                          "benchmark match; export other runs, or check the --decontaminate benchmarks")
    splits = assign(pairs, ratios, split_seed)
    _check_sizes({name: len(split_pairs) for name, split_pairs in splits.items()}, min_per_split, "pairs")
    context = ExportContext({run.name: run for run in runs}, data_source, license or _default_license(runs), ratios,
                            split_seed)
    settings = trainer_settings(pairs, context)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        with disk_full_as_one_line(out, "nothing was written and any earlier export there is as it was"):
            rows, counts = _write_formats(staging, run_dirs, formats, splits, removals, context, benchmarks,
                                          settings, min_per_split)
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, counts, rows, removal_counts(removals), settings)


def _check_sizes(counts: dict[str, int], minimum: int, what: str) -> None:
    problem = too_small(counts, minimum, what)
    if problem:
        raise ExportError(f"{problem}; nothing was written: give that split a larger share, export more runs, or "
                          "leave the split out (as in --splits train=1)")


def _write_formats(staging: Path, run_dirs: list[Path], formats: tuple[str, ...], splits: dict, removals: list[dict],
                   context: ExportContext, benchmarks: list[Benchmark], settings, min_per_split: int
                   ) -> tuple[dict, dict]:
    """Every format, removed.jsonl and the manifest into `staging`; rows per format, pairs per split."""
    mark(staging, EXPORT)
    rows = {name: FORMATS[name].write(splits, staging / name, context) for name in formats}
    for name, format_rows in rows.items():  # SFT formats leave out pairs without a demonstration
        _check_sizes(format_rows, min_per_split, f"{name} rows")
    counts = {name: len(split_pairs) for name, split_pairs in splits.items()}
    with (staging / REMOVED).open("w", encoding="utf-8") as sink:
        sink.writelines(json.dumps(removal, ensure_ascii=False) + "\n" for removal in removals)
    manifest = {"runs": [str(Path(d)) for d in run_dirs], "formats": rows, "splits": counts,
                "ratios": context.ratios, "split_seed": context.split_seed, "data_source": context.data_source,
                "license": context.license, "removed": removal_counts(removals),
                "benchmarks": [benchmark.name for benchmark in benchmarks],
                "trainer_settings": settings.to_dict() if settings else None}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return rows, counts


def _default_license(runs) -> str:
    return BUNDLED_LICENSE if all(run.settings.get("corpus") == "bundled" for run in runs) else UNKNOWN_LICENSE


def check_out(out: Path) -> None:
    """Before any work: `out` is new, empty, or an earlier export holding only what export writes there."""
    check_output_folder(out, EXPORT)
    others = foreign_entries(out, (*FORMATS, REMOVED, MANIFEST)) if out.is_dir() and any(out.iterdir()) else []
    if others:
        raise ExportError(f"--out {out} holds an earlier export and files export did not write ({', '.join(others)}); "
                          "re-exporting replaces the folder whole: move them out, or pass another --out")


def _publish(staging: Path, out: Path) -> None:
    """Move the finished export into place; an earlier export there is swapped out, then removed."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(old / out.name)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
