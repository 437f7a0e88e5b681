"""`sage evaluate`: several recipes on the same seeds, the paper's intrinsic table by round count."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sage_dspy.environment import ARTIFACTS
from sage_dspy.cli import printing
from sage_dspy.cli.options import (AdapterOption, BreakerInARow, BreakerRate, BreakerWindow, LmParseRetries,
                                   breaker_limits)
from sage_dspy.cli.options import (PROTOCOL_HELP, ApiBase, Attempts, ConfigFile, DrawSeed, EveryRoleLm, LmRetries,
                                   LmSeed, LmTimeout, MaxTokens, RayAddress, Retriever, Workers, check_protocol, fail,
                                   lm_settings, parse_targets, ray_engine, check_ray_address)
from sage_dspy.lm.roles import ROLES
from sage_dspy.programs import RECIPES
from sage_dspy.runs.evaluate import DEFAULT_RECIPES, check_outputs, evaluate_recipes
from sage_dspy.runs.evaluate_report import write_report
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.search.corpus_index import open_corpus
from sage_dspy.search.remote import check_url
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.evaluate_logging import log_evaluate


def evaluate_command(
    corpus: Annotated[str, typer.Option(help="corpus to draw seeds from")] = "bundled",
    recipes: Annotated[str, typer.Option(help="comma-separated program recipes")] = ",".join(DEFAULT_RECIPES),
    seeds: Annotated[int, typer.Option(min=1, help="seed passages (the same for every recipe)")] = 40,
    targets: Annotated[str, typer.Option(help="target searches range (the paper: 3-7)")] = "3-7",
    lm: EveryRoleLm = None,
    rounds: Annotated[int, typer.Option(min=0, max=10, help="revision rounds R")] = 3,
    k: Attempts = 4,
    random_seed: DrawSeed = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="report folder (default: "
                                                    "artifacts/evaluations/<corpus>-seed<seed>)")] = None,
    track: Annotated[bool, typer.Option(help="log the evaluation to MLflow")] = True,
    protocol: Annotated[str, typer.Option(help=PROTOCOL_HELP + " (the default here: Avg@K and mean searches "
                                               "exactly as the paper counts them)")] = "paper",
    config_file: ConfigFile = None,
    api_base: ApiBase = None,
    max_tokens: MaxTokens = None,
    lm_seed: LmSeed = None,
    lm_timeout: LmTimeout = None,
    lm_retries: LmRetries = None,
    lm_parse_retries: LmParseRetries = None,
    adapter: AdapterOption = None,
    retriever: Retriever = None,
    breaker_in_a_row: BreakerInARow = None,
    breaker_rate: BreakerRate = None,
    breaker_window: BreakerWindow = None,
    workers: Workers = 1,
    ray: RayAddress = None,
) -> None:
    """Run several recipes on the same seeds and print the paper's intrinsic table by round count."""
    low, high = parse_targets(targets)
    chosen = _recipes(recipes)
    settings = lm_settings(config_file, {}, lm=lm, api_base=api_base, max_tokens=max_tokens, seed=lm_seed,
                           timeout=lm_timeout, retries=lm_retries,
                           parse_retries=lm_parse_retries, adapter=adapter,
                           breaker={"in_a_row": breaker_in_a_row, "rate": breaker_rate, "window": breaker_window})
    shared_options, role_options = settings.split(ROLES)
    base = GenerateConfig(corpus=corpus, seeds=seeds, min_target=low, max_target=high, rounds=rounds, k=k,
                          random_seed=random_seed, lms=settings.lms(ROLES), lm_options=shared_options,
                          role_options=role_options, protocol=check_protocol(protocol),
                          retriever=check_url(retriever) if retriever else "")
    lm = ", ".join(sorted(set(base.lms.values())))
    folder = out_dir or ARTIFACTS / "evaluations" / f"{base.corpus_label()}-seed{random_seed}"
    check_outputs(base, chosen, ARTIFACTS / "runs", folder)  # before the corpus is read or any recipe runs
    engine = ray_engine(ray)  # no Ray installed, or no Ray address: said before the corpus is read
    check_ray_address(engine)
    passages = open_corpus(corpus, retriever=base.retriever, root=base.index_root)
    tracking_uri = tracking.configure_tracking(root=ARTIFACTS) if track else ""
    results = evaluate_recipes(base, chosen, ARTIFACTS / "runs", passages=passages, workers=workers, engine=engine,
                               breaker=breaker_limits(settings),
                               on_recipe=lambda name, reused: printing.status(
                                   f"{name}: {'reused an earlier run' if reused else 'done'}"))
    header = (f"Corpus `{corpus}`, {seeds} seeds, targets {low}-{high}, K={k}, up to {rounds} rounds, "
              f"LM `{lm}`, {protocol} protocol.")
    report = write_report(results, folder, header)
    printing.evaluation(results, corpus, lm)
    run_id = log_evaluate(base, results, folder) if track else None
    printing.report_written(report, offline="offline" in base.lms.values())
    if run_id:
        printing.tracked_run(run_id, tracking_uri, children=len(results))

def _recipes(text: str) -> tuple[str, ...]:
    """"sage, resample" -> ("sage", "resample"), every name a known recipe."""
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in RECIPES]
    if unknown or not chosen:
        fail(f"unknown program recipe(s) {unknown or text!r}: choose from {', '.join(RECIPES)}")
    return chosen
