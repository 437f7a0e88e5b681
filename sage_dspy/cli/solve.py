"""`sage solve`: the search agent alone on real questions with gold answers."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sage_dspy.environment import ARTIFACTS
from sage_dspy.outputs import SOLVE, check_output_folder
from sage_dspy.cli import printing
from sage_dspy.cli.options import (AdapterOption, ApiBase, ConfigFile, LmParseRetries, LmRetries, LmSeed, LmTimeout,
                                    MaxTokens, Retriever, lm_settings)
from sage_dspy.runs.solve import SolveConfig, solve
from sage_dspy.search.corpus_index import open_corpus
from sage_dspy.search.remote import check_url


def solve_command(
    questions: Annotated[Path, typer.Option(help="JSONL of questions with gold answers (e.g. "
                                                 "../shared/data/dev/qa.jsonl)")],
    corpus: Annotated[str, typer.Option(help="the corpus the agent searches")] = "bundled",
    lm: Annotated[Optional[str], typer.Option(help="LM for the search agent and judge (default: "
                                                   "offline)")] = None,
    judge_lm: Annotated[Optional[str], typer.Option(help="LM for the judge only")] = None,
    k: Annotated[int, typer.Option(min=1, max=32, help="attempts per question")] = 4,
    limit: Annotated[Optional[int], typer.Option(min=1, help="only the first N questions")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for answers.jsonl and summary.json")] =
        ARTIFACTS / "solve" / "latest",
    config_file: ConfigFile = None,
    api_base: ApiBase = None,
    max_tokens: MaxTokens = None,
    lm_seed: LmSeed = None,
    lm_timeout: LmTimeout = None,
    lm_retries: LmRetries = None,
    lm_parse_retries: LmParseRetries = None,
    adapter: AdapterOption = None,
    retriever: Retriever = None,
) -> None:
    """Run the search agent alone on real questions: pass@K, Avg@K and searches by hop count."""
    check_output_folder(out_dir, SOLVE)  # a file, read-only or someone else's folder: said before any work
    roles = ("solver", "judge")
    settings = lm_settings(config_file, {"solver": lm, "judge": judge_lm or lm}, api_base=api_base,
                           max_tokens=max_tokens, seed=lm_seed, timeout=lm_timeout, retries=lm_retries,
                           parse_retries=lm_parse_retries, adapter=adapter)
    shared_options, role_options = settings.split(roles)
    lm = settings.models["solver"]
    config = SolveConfig(questions=questions, lms=settings.lms(roles), k=k, limit=limit, out_dir=out_dir,
                         lm_options=shared_options, role_options=role_options,
                         retriever=check_url(retriever) if retriever else "")
    passages = open_corpus(corpus, retriever=config.retriever)
    with printing.progress_bar() as progress:
        task = progress.add_task("solving", total=limit)
        rows, summary = solve(config, passages, on_row=lambda row: progress.advance(task), prices=settings.prices)
    printing.solved(summary, title=f"search agent on {questions.name} over {corpus} (LM: {lm}, K={k})",
                    offline=lm == "offline", answers=out_dir / "answers.jsonl")
    if summary["all_failed"]:
        printing.all_attempts_failed(len(rows), out_dir / "answers.jsonl")
        raise typer.Exit(code=1)  # as generate: not bad input (2), the run ran and answered nothing
