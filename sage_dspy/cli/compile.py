"""`sage compile`: the generator's prompts compiled by a DSPy optimizer, scored on validation seeds."""

from typing import Annotated, Optional

import typer

from sage_dspy.environment import ARTIFACTS
from sage_dspy.cli import printing
from sage_dspy.cli.options import (AdapterOption, BreakerInARow, BreakerRate, BreakerWindow, LmParseRetries,
                                   breaker_limits)
from sage_dspy.cli.options import (ApiBase, ConfigFile, LmRetries, LmSeed, LmTimeout, MaxTokens, Recipe,
                                   Retriever, check_choice, lm_settings, parse_targets)
from sage_dspy.lm.roles import ALL_ROLES, ROLES
from sage_dspy.runs.preflight import check_retriever
from sage_dspy.optimizers import OPTIMIZERS
from sage_dspy.programs import RECIPES
from sage_dspy.runs.compile import CompileConfig, check_optimizer_budget, check_seed_count, compile_program
from sage_dspy.runs.library_logs import library_output
from sage_dspy.search.corpus_index import open_corpus
from sage_dspy.search.remote import check_url
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.compile_logging import log_compile


def compile_command(
    optimizer: Annotated[str, typer.Option(help=f"optimizer recipe: {', '.join(OPTIMIZERS)}")] = "gepa",
    recipe: Recipe = "sage",
    corpus: Annotated[str, typer.Option(help="corpus to draw training and validation seeds from")] = "bundled",
    lm: Annotated[Optional[str], typer.Option(help="LM for generator and reviser (what is compiled; default: "
                                                   "offline)")] = None,
    solver_lm: Annotated[Optional[str], typer.Option(help="LM pinned to the search agent and judge (default: "
                                                          "offline)")] = None,
    reflection_lm: Annotated[Optional[str], typer.Option(help="LM for GEPA's reflections (default: "
                                                              "offline)")] = None,
    train_size: Annotated[int, typer.Option(min=1, help="training seeds")] = 12,
    val_size: Annotated[int, typer.Option(min=1, help="validation seeds (scored before and after)")] = 8,
    budget: Annotated[int, typer.Option(min=1, help="GEPA metric calls / MIPROv2 trials / bootstrap "
                                                    "candidates")] = 60,
    targets: Annotated[str, typer.Option(help="target searches range for the seeds")] = "2-5",
    rounds: Annotated[int, typer.Option(min=0, max=10, help="revision rounds during compilation")] = 2,
    random_seed: Annotated[int, typer.Option("--seed", help="seed for drawing seeds")] = 0,
    track: Annotated[bool, typer.Option(help="log to MLflow and register prompt versions")] = True,
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
    eval_seeds: Annotated[int, typer.Option(min=0, help="also score on this many held-out seeds, the same for every "
                                                        "compile on the corpus (set aside from train and "
                                                        "validation), so runs compare")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=1, max=1024, help="seeds scored at once (the optimizer's "
                                         "num_threads, and the before/after scores): LM calls in flight, not "
                                         "what the compile finds")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show DSPy/GEPA logs and progress bars (always "
                                                                  "in the program folder's compile.log)")] = False,
) -> None:
    """Compile the generator's prompts with a DSPy optimizer; print validation scores before and after."""
    low, high = parse_targets(targets)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("program recipe", recipe, RECIPES)
    settings = lm_settings(config_file, {"generator": lm, "reviser": lm, "solver": solver_lm, "judge": solver_lm,
                                         "reflection": reflection_lm}, api_base=api_base, max_tokens=max_tokens,
                           seed=lm_seed, timeout=lm_timeout, retries=lm_retries,
                           parse_retries=lm_parse_retries, adapter=adapter,
                           breaker={"in_a_row": breaker_in_a_row, "rate": breaker_rate, "window": breaker_window})
    shared_options, role_options = settings.split(ALL_ROLES)
    config = CompileConfig(
        corpus=corpus, recipe=recipe, optimizer=optimizer, reflection_lm=settings.models["reflection"],
        lms=settings.lms(ROLES), train_size=train_size, val_size=val_size, budget=budget, min_target=low,
        max_target=high, rounds=rounds, random_seed=random_seed, lm_options=shared_options,
        role_options=role_options, retriever=check_url(retriever) if retriever else "",
        eval_seeds=eval_seeds)
    # bad input is refused before anything is created
    check_optimizer_budget(optimizer, budget, val_size)
    passages = open_corpus(corpus, retriever=config.retriever, root=config.index_root)
    check_seed_count(len(passages), train_size, val_size, eval_seeds)
    check_retriever(config.retriever)  # before the status line: a dead retriever is the one line printed
    tracking_uri = tracking.configure_tracking(root=ARTIFACTS) if track else ""
    printing.status(f"compiling {recipe} with {optimizer} (budget {budget})...")
    result = compile_program(config, passages, verbose=verbose, workers=workers, breaker=breaker_limits(settings))
    with library_output(result.log_file, verbose=verbose):  # the pickle warnings of logging the program
        run_id = log_compile(config, result) if track else None
    printing.compiled(result, title=f"{optimizer} on {recipe} (sage metric x100)", tracking_uri=tracking_uri,
                      run_id=run_id,
                      offline="offline" in (settings.models["generator"], settings.models["solver"]))
