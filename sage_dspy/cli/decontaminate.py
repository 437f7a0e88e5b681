"""`sage decontaminate`: the kept pairs of one or more runs checked against benchmark questions."""

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sage_dspy.dataset.benchmarks import BenchmarkError, load_benchmark
from sage_dspy.dataset.decontaminate import CHECKS, Report, find_contamination
from sage_dspy.runs.folder import RECORDS_FILE

err = Console(stderr=True)
out = Console()
SHOWN_FLAGS = 10


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _kept_records(run_dir: Path) -> list[dict]:
    """A run's kept pairs, in file order (whole lines only: a run killed mid-write leaves a torn last one)."""
    path = run_dir / RECORDS_FILE
    if not path.is_file():
        _fail(f"{run_dir} has no {RECORDS_FILE}; give a folder written by `sage generate`")
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    try:
        records = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as error:
        _fail(f"{path} has a line that is not JSON ({error.msg}); regenerate the run")
    if not records:
        _fail(f"{path} holds no records yet; run `sage generate --out {run_dir}` first")
    return [record for record in records if record.get("kept")]


def _write_atomically(path: Path, data: dict) -> None:
    """A temporary name, then a rename: a killed command never leaves half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _table(report: Report) -> Table:
    table = Table(title=f"contamination of {report.records} kept pairs (flagged pairs per check)")
    for column in ("benchmark", "items", *CHECKS, "any"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, counts in report.counts().items():
        flagged = len({f.record_index for f in report.flags if f.benchmark == name})
        table.add_row(name, str(report.benchmarks[name]), *(str(counts[c]) for c in CHECKS), str(flagged))
    return table


def decontaminate_command(
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(metavar="RUN_DIR", show_default=False,
                                                             help="run folders written by `sage generate`")] = None,
    benchmark: Annotated[Optional[list[str]], typer.Option(
        "--benchmark", "-b", help="a JSON / JSONL / parquet file with a question (and answer) field, or a "
                                  "cached Hugging Face dataset (NAME, NAME:CONFIG, NAME@SPLIT); repeat for "
                                  "several")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write every flag to this JSON report")] = None,
) -> None:
    """Flag kept pairs that match a benchmark question: exact, word 8-gram, MinHash or same answer."""
    if not run_dirs:
        _fail("no run folder given; pass one or more RUN_DIR written by `sage generate`")
    if not benchmark:
        _fail("no benchmark given; pass --benchmark FILE_OR_NAME (repeat it for several)")
    runs = [(run_dir, record) for run_dir in run_dirs for record in _kept_records(run_dir)]
    try:
        benchmarks = [load_benchmark(source) for source in benchmark]
    except BenchmarkError as error:
        _fail(str(error))
    report = find_contamination([record for _, record in runs], benchmarks)
    out.print(_table(report))
    for flag in report.flags[:SHOWN_FLAGS]:
        out.print(f"{flag.benchmark}#{flag.item_index} {flag.check} ({flag.similarity:.2f}): "
                  f"{flag.question!r} ~ {flag.item_question!r}", highlight=False, markup=False)
    if len(report.flags) > SHOWN_FLAGS:
        out.print(f"... and {len(report.flags) - SHOWN_FLAGS} more flags" + ("" if out_file else
                                                                                 " (--out FILE lists them all)"))
    out.print(f"{len(report.flagged_records())} of {report.records} kept pairs flagged", highlight=False)
    if out_file:
        data = report.to_dict()
        data["runs"] = [str(run_dir) for run_dir in run_dirs]
        for flag in data["flags"]:
            flag["run"] = str(runs[flag["record"]][0])
        _write_atomically(out_file, data)
        out.print(f"report: {out_file}", highlight=False)
