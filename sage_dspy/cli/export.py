"""`sage export`: finished runs into training sets (Search-R1, verl, OpenAI / TRL SFT, a Hugging Face folder)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sage_dspy.environment import ARTIFACTS
from sage_dspy.cli import printing
from sage_dspy.dataset import export as exporting
from sage_dspy.dataset import hub
from sage_dspy.dataset.benchmarks import load_benchmark
from sage_dspy.dataset.formats.search_r1 import DATA_SOURCES, DEFAULT_DATA_SOURCE
from sage_dspy.dataset.splits import parse_splits

DATA_SOURCE_HELP = (
    f"the Search-R1 dataset name the rows claim, one of {', '.join(DATA_SOURCES)}. Search-R1's trainer "
    "refuses any other; all seven score with the same exact-match reward (qa_em.compute_score_em; verl: "
    "search_r1_like_qa_em for searchR1_<name>), and the name labels validation scores as "
    "val/test_score/<name>: pick one your other validation files do not use to see SAGE's test split apart")
LICENSE_HELP = ("licence id for the dataset card (default: cc0-1.0 for the bundled corpus, else 'unknown': your "
                "corpus's licence decides)")


def export(
    run_dirs: Annotated[list[Path], typer.Argument(help="run folders written by `sage generate --out`")],
    formats: Annotated[str, typer.Option("--format", help="comma-separated: "
                                         f"{', '.join(exporting.FORMATS)}")] = ",".join(exporting.FORMATS),
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="folder to write, one subfolder per format "
                                                    "(default: artifacts/exports/<first run>)")] = None,
    splits: Annotated[str, typer.Option(help="split shares summing to 1; pairs sharing a seed or supporting "
                                             "passage stay in one split")] = "train=0.9,test=0.1",
    split_seed: Annotated[int, typer.Option(help="seed for assigning groups of pairs to splits")] = 0,
    min_per_split: Annotated[int, typer.Option(
        help="refuse the export (nothing written) when a split would get fewer pairs, or fewer rows in a "
             "format")] = exporting.MIN_PER_SPLIT,
    data_source: Annotated[str, typer.Option(help=DATA_SOURCE_HELP)] = DEFAULT_DATA_SOURCE,
    license_id: Annotated[Optional[str], typer.Option("--license", help=LICENSE_HELP)] = None,
    decontaminate: Annotated[Optional[list[str]], typer.Option(
        "--decontaminate", metavar="BENCH", help="leave out pairs matching this benchmark (as `sage "
                                                 "decontaminate --benchmark` takes it); repeat for several")] = None,
    push_to_hub: Annotated[Optional[str], typer.Option(
        "--push-to-hub", metavar="REPO", help="upload the hf folder as the dataset repository <user>/<name>; the "
                                              "token comes from HF_TOKEN, and HF_HUB_OFFLINE must be 0")] = None,
) -> None:
    """Write the kept pairs of finished runs in each training format, split without leaks; near-duplicates
    (and with --decontaminate, benchmark matches) are left out and listed in removed.jsonl."""
    out_dir = out_dir or ARTIFACTS / "exports" / run_dirs[0].resolve().name
    chosen, ratios = exporting.parse_formats(formats), parse_splits(splits)
    exporting.check_out(out_dir)  # before a benchmark is loaded: that can be a dataset download
    benchmarks = [load_benchmark(source) for source in decontaminate or ()]  # bad files before any work
    if push_to_hub:
        hub.check_push(push_to_hub, chosen)  # offline or tokenless: said before anything is written
    result = exporting.export(run_dirs, out_dir, chosen, ratios,
                              split_seed=split_seed, data_source=exporting.check_data_source(data_source),
                              license=license_id, benchmarks=benchmarks, min_per_split=min_per_split)
    printing.exported(result)
    if push_to_hub:
        printing.out.print(f"pushed: {hub.push(result.out / 'hf', push_to_hub)}", highlight=False)
