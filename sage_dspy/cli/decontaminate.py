"""`sage decontaminate`: the kept pairs of one or more runs checked against benchmark questions."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sage_dspy.cli import printing
from sage_dspy.cli.options import fail
from sage_dspy.dataset.benchmarks import load_benchmark
from sage_dspy.dataset.decontaminate import check_report_path, find_contamination, write_report
from sage_dspy.dataset.pairs import read_runs


def decontaminate_command(
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(metavar="RUN_DIR", show_default=False,
                                                             help="run folders written by `sage generate`")] = None,
    benchmark: Annotated[Optional[list[str]], typer.Option(
        "--benchmark", "--against", "-b",
        help="a JSON / JSONL / parquet file with a question (and answer) field or a chat prompt (Search-R1, verl "
             "parquet), or a cached Hugging Face dataset (NAME, NAME:CONFIG, NAME@SPLIT); repeat for several")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write every flag to this JSON report")] = None,
) -> None:
    """Flag kept pairs that match a benchmark question: exact, 2-gram coverage, MinHash or same answer (the
    wording checks and the answer check also need what the benchmark question names)."""
    if not run_dirs:
        fail("no run folder given; pass one or more RUN_DIR written by `sage generate`")
    if not benchmark:
        fail("no benchmark given; pass --benchmark FILE_OR_NAME (repeat it for several)")
    if out_file:
        check_report_path(out_file, inputs=[*run_dirs, *(Path(source) for source in benchmark)])
    _, pairs = read_runs(run_dirs)
    report = find_contamination(pairs, [load_benchmark(source) for source in benchmark])
    printing.contamination(report, listed_all=out_file is not None)
    if out_file:
        data = report.to_dict()
        data["runs"] = [str(run_dir) for run_dir in run_dirs]
        folders = {run_dir.name: str(run_dir) for run_dir in run_dirs}
        for flag in data["flags"]:
            flag["run"] = folders[pairs[flag["record"]]["source_run"]]
        write_report(out_file, data)
        printing.out.print(f"report: {out_file}", highlight=False)
