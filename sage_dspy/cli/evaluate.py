"""`sage evaluate`: several recipes on the same seeds, the paper's intrinsic table by round count."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from sage_dspy.environment import ARTIFACTS
from sage_dspy.cli import printing
from sage_dspy.cli.signals import interrupt_exit_code, resume_command, sigterm_as_interrupt
from sage_dspy.cli.options import (AdapterOption, BreakerInARow, BreakerRate, BreakerWindow, LmParseRetries,
                                   breaker_limits)
from sage_dspy.cli.options import (PROTOCOL_HELP, ApiBase, Attempts, ConfigFile, DrawSeed, EveryRoleLm, LmRetries,
                                   LmSeed, LmTimeout, MaxTokens, RayAddress, Retriever, Workers, check_protocol, fail,
                                   lm_settings, parse_targets, ray_engine, check_ray_address)
from sage_dspy.lm.roles import ROLES
from sage_dspy.programs import RECIPES
from sage_dspy.runs.evaluate import (DEFAULT_RECIPES, check_outputs, evaluate_configs, program_configs,
                                     recipe_configs, report_folder_name)
from sage_dspy.runs.evaluate_report import write_report
from sage_dspy.runs.program_names import BASELINE
from sage_dspy.runs.program_comparison import compare_programs, markdown
from sage_dspy.tracking.sources import resolve_program
from sage_dspy.runs.config import GenerateConfig, identified
from sage_dspy.runs.preflight import check_retriever
from sage_dspy.search.corpus_index import open_corpus
from sage_dspy.search.remote import check_url
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.evaluate_logging import log_evaluate


def evaluate_command(
    ctx: typer.Context,
    corpus: Annotated[str, typer.Option(help="corpus to draw seeds from")] = "bundled",
    recipes: Annotated[Optional[str], typer.Option(
        help=f"comma-separated program recipes [default: {','.join(DEFAULT_RECIPES)}; with --programs: the one "
             "recipe every program runs under, sage]")] = None,
    programs: Annotated[Optional[str], typer.Option(
        help="compare programs on the same seeds, paired: comma-separated `baseline` (the recipe's own prompts), "
             "folders from `sage compile`, runs:/<id>/program, models:/<id>, prompts:/<name>/<version>")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="seed passages (the same for every recipe)")] = 40,
    targets: Annotated[str, typer.Option(help="target searches range (the paper: 3-7)")] = "3-7",
    lm: EveryRoleLm = None,
    rounds: Annotated[int, typer.Option(min=0, max=10, help="revision rounds R")] = 3,
    k: Attempts = 4,
    random_seed: DrawSeed = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="report folder (default: "
                                                    "artifacts/evaluations/<corpus>-<seeds>seeds-seed<seed>-"
                                                    "<settings hash>)")] = None,
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
    """Run several recipes, or several compiled programs of one recipe, on the same seeds and print the paper's
    intrinsic table by round count; with --programs, also each pair's paired difference and its 95% interval."""
    low, high = parse_targets(targets)
    chosen = _recipes(recipes or ("sage" if programs else ",".join(DEFAULT_RECIPES)))
    if programs and len(chosen) != 1:
        fail(f"--programs runs every program under one recipe, and --recipes names {len(chosen)}; pass one, "
             "e.g. --recipes sage")
    settings = lm_settings(config_file, {}, lm=lm, api_base=api_base, max_tokens=max_tokens, seed=lm_seed,
                           timeout=lm_timeout, retries=lm_retries,
                           parse_retries=lm_parse_retries, adapter=adapter,
                           breaker={"in_a_row": breaker_in_a_row, "rate": breaker_rate, "window": breaker_window})
    shared_options, role_options = settings.split(ROLES)
    base = GenerateConfig(corpus=corpus, recipe=chosen[0], seeds=seeds, min_target=low, max_target=high,
                          rounds=rounds, k=k, random_seed=random_seed, lms=settings.lms(ROLES), lm_options=shared_options,
                          role_options=role_options, protocol=check_protocol(protocol),
                          retriever=check_url(retriever) if retriever else "")
    check_retriever(base.retriever)  # a dead retriever: one line before anything runs
    base = identified(base)  # once for every run, and so the earlier runs to reuse are found with its index
    lm = ", ".join(sorted(set(base.lms.values())))
    engine = ray_engine(ray)  # no Ray installed, or no Ray address: said before the corpus is read
    check_ray_address(engine)
    compiled = _programs(programs) if programs else None  # a source that cannot be used: said before any run
    configs = program_configs(base, compiled) if compiled is not None else recipe_configs(base, chosen)
    folder = out_dir or ARTIFACTS / "evaluations" / report_folder_name(base, list(configs))
    check_outputs(configs, ARTIFACTS / "runs", folder)  # before the corpus is read or anything runs
    passages = open_corpus(corpus, retriever=base.retriever, root=base.index_root)
    tracking_uri = tracking.configure_tracking(root=ARTIFACTS) if track else ""
    try:  # Ctrl-C or SIGTERM: the runs so far are on disk, and the same command resumes (reuses) them
        with sigterm_as_interrupt():
            results = evaluate_configs(configs, ARTIFACTS / "runs", passages=passages, workers=workers,
                                       engine=engine, breaker=breaker_limits(settings),
                                       on_recipe=lambda name, reused: printing.status(
                                           f"{name}: {'reused an earlier run' if reused else 'done'}"))
    except KeyboardInterrupt as interrupt:
        printing.evaluation_interrupted(ARTIFACTS / "runs", resume_command(ctx.meta.get("argv"), "evaluate"))
        raise typer.Exit(code=interrupt_exit_code(interrupt)) from None  # 130 for Ctrl-C, 143 for SIGTERM
    comparisons = compare_programs(results) if compiled is not None else []
    header = (f"Corpus `{corpus}`, {seeds} seeds, targets {low}-{high}, K={k}, up to {rounds} rounds, "
              f"LM `{lm}`, {protocol} protocol" + (f", recipe `{base.recipe}`." if compiled else "."))
    report = write_report(results, folder, header, markdown(comparisons) if comparisons else "")
    printing.evaluation(results, corpus, lm)
    printing.comparison(comparisons)
    run_id = log_evaluate(base, results, folder, comparisons) if track else None
    printing.report_written(report, offline="offline" in base.lms.values())
    if run_id:
        printing.tracked_run(run_id, tracking_uri, children=len(results))

def _programs(text: str) -> dict[str, Optional[Path]]:
    """"baseline, prompts:/x/2" -> {"baseline": None, "prompts:/x/2": <its compiled folder>}: at least two
    distinct programs, each resolved (fetched from MLflow where it lives there) before anything runs."""
    sources = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if len(sources) < 2:
        fail(f"--programs {text!r} names {len(sources)} distinct program(s); a comparison needs two or more, "
             "e.g. --programs baseline,prompts:/sage.generator.propose.react/2")
    if any(":/" in source for source in sources):
        tracking.configure_tracking(root=ARTIFACTS)  # the programs live in the MLflow store
    return {source: None if source == BASELINE else resolve_program(source) for source in sources}


def _recipes(text: str) -> tuple[str, ...]:
    """"sage, resample" -> ("sage", "resample"), every name a known recipe."""
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in RECIPES]
    if unknown or not chosen:
        fail(f"unknown program recipe(s) {unknown or text!r}: choose from {', '.join(RECIPES)}")
    return chosen
