"""`sage generate`: verified QA pairs from a corpus, with the paper's table for the run."""

import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import TextColumn

import sage_dspy
from sage_dspy.environment import ARTIFACTS
from sage_dspy.cli import printing
from sage_dspy.cli.options import (AdapterOption, BreakerInARow, BreakerRate, BreakerWindow, LmParseRetries,
                                   breaker_limits)
from sage_dspy.cli.signals import interrupt_exit_code, resume_command, sigterm_as_interrupt
from sage_dspy.cli.options import (PROTOCOL_HELP, ApiBase, Attempts, ConfigFile, DrawSeed, EveryRoleLm, IdField,
                                   LmRetries, LmSeed, LmTimeout, MaxTokens, RayAddress, Recipe, Retriever, TextField,
                                   TitleField, Workers, check_choice, check_protocol, corpus_fields, lm_settings,
                                   parse_targets, ray_engine, check_ray_address)
from sage_dspy.errors import SageError
from sage_dspy.lm.pricing import require_prices
from sage_dspy.lm.roles import ROLES
from sage_dspy.programs import RECIPES
from sage_dspy.runs.config import GenerateConfig, identified
from sage_dspy.runs.folder import check_out_folder, RECORDS_FILE
from sage_dspy.runs.generate import generate, GenerateResult
from sage_dspy.search.corpus_index import open_corpus
from sage_dspy.search.remote import check_url
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.run_logging import generate_run, log_generate, logged_finished_run
from sage_dspy.tracking.stale_runs import end_stale_runs
from sage_dspy.tracking.sources import resolve_program

PACKAGE = str(Path(sage_dspy.__file__).parent)  # warnings raised by our code become notes; others stay quiet


def generate_command(
    ctx: typer.Context,
    corpus: Annotated[str, typer.Option(help="'bundled', a .jsonl/.json/.parquet/.csv file, a folder of "
                                             ".txt/.md files, or a Hugging Face dataset name")] = "bundled",
    seeds: Annotated[Optional[int], typer.Option(min=1, help="how many seed passages to draw [default: 40]")] = None,
    accepted: Annotated[Optional[int], typer.Option(min=1, help="draw seeds until this many pairs are kept "
                                                                "(duplicates removed), instead of --seeds")] = None,
    targets: Annotated[str, typer.Option(help="target searches S, drawn per seed from this range")] = "2-5",
    recipe: Recipe = "sage",
    lm: EveryRoleLm = None,
    generator_lm: Annotated[Optional[str], typer.Option(help="LM for the generator only")] = None,
    solver_lm: Annotated[Optional[str], typer.Option(help="LM for the search agent only")] = None,
    judge_lm: Annotated[Optional[str], typer.Option(help="LM for the answer judge only")] = None,
    reviser_lm: Annotated[Optional[str], typer.Option(help="LM for the reviser only")] = None,
    rounds: Annotated[int, typer.Option(min=0, max=10, help="revision rounds R after the first")] = 3,
    k: Attempts = 4,
    random_seed: DrawSeed = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for records.jsonl, dataset.jsonl, summary")] =
        ARTIFACTS / "runs" / "latest",
    text_field: TextField = None,
    title_field: TitleField = None,
    id_field: IdField = None,
    track: Annotated[bool, typer.Option(help="log the run to MLflow (artifacts/mlflow.db, or "
                                             "MLFLOW_TRACKING_URI)")] = True,
    program: Annotated[Optional[str], typer.Option(help="a compiled program: a folder from `sage compile`, "
                                                        "runs:/<run id>/program, models:/<id>, or "
                                                        "prompts:/<name>@<alias> or /<version>")] = None,
    traces: Annotated[bool, typer.Option(help="also log a DSPy trace per seed to MLflow (slower)")] = False,
    fresh: Annotated[bool, typer.Option(help="start over instead of resuming the run in --out")] = False,
    workers: Workers = 1,
    protocol: Annotated[str, typer.Option(help=PROTOCOL_HELP)] = "lean",
    parallel_attempts: Annotated[bool, typer.Option(help="run each pair's K attempts at once: the same records "
                                                         "sooner, for some calls stopped part-way")] = False,
    max_calls: Annotated[Optional[int], typer.Option(min=1, help="stop starting seeds once this many LM calls are "
                                                                 "spent; re-run with more to continue")] = None,
    max_cost: Annotated[Optional[float], typer.Option(min=0, help="stop starting seeds once this many USD are "
                                                                  "spent (every model needs a price); re-run "
                                                                  "with more to continue")] = None,
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
    ray: RayAddress = None,
    allow_weak_judge: Annotated[bool, typer.Option(help="run even when the judge LM fails its calibration items "
                                                        "(checked before any seed), with a loud warning")] = False,
) -> None:
    """Generate verified QA pairs that need at least S searches, and print the paper's table for the run."""
    if seeds is not None and accepted is not None:
        raise SageError("--seeds and --accepted both given; pass --seeds N for a count of seeds or "
                        "--accepted N for a count of kept pairs")
    low, high = parse_targets(targets)
    check_choice("program recipe", recipe, RECIPES)
    fields = corpus_fields(text_field, title_field, id_field)
    settings = lm_settings(config_file, {"generator": generator_lm, "solver": solver_lm, "judge": judge_lm,
                                         "reviser": reviser_lm}, lm=lm, api_base=api_base, max_tokens=max_tokens,
                           seed=lm_seed, timeout=lm_timeout, retries=lm_retries,
                           parse_retries=lm_parse_retries, adapter=adapter,
                           breaker={"in_a_row": breaker_in_a_row, "rate": breaker_rate, "window": breaker_window})
    shared_options, role_options = settings.split(ROLES)
    config = GenerateConfig(
        corpus=corpus, corpus_fields=fields, seeds=0 if accepted else seeds or 40, accepted=accepted or 0,
        min_target=low, max_target=high, recipe=recipe,
        lms=settings.lms(ROLES), rounds=rounds, k=k, random_seed=random_seed, out_dir=out_dir,
        lm_options=shared_options, role_options=role_options, program=program or "",
        protocol=check_protocol(protocol), retriever=check_url(retriever) if retriever else "",
    )
    if max_cost is not None:
        require_prices(config.lms.values(), settings.prices)  # before the corpus is read or any call made
    engine = ray_engine(ray)  # no Ray installed: said before the corpus is read
    check_ray_address(engine)
    program_folder = _program_folder(program)
    check_out_folder(out_dir)  # a file, read-only or someone else's folder: said before the corpus is indexed
    config, identity_notes = _with_notes(identified, config)  # the index behind --retriever, for MLflow too
    printing.notes(identity_notes)
    # bad input: before the run folder is created; a local corpus is streamed into its index (or that is opened)
    passages, corpus_notes = _with_notes(open_corpus, corpus, retriever=config.retriever, root=config.index_root,
                                         **fields)
    printing.notes(corpus_notes)
    tracking_uri = tracking.configure_tracking(root=ARTIFACTS) if track else ""
    if track and traces:
        tracking.autolog_dspy()  # before any dspy.context is entered, or the callback is invisible
    logged = logged_finished_run(config) if track and not fresh else ""
    try:
        # the MLflow run is open while the seeds run, so their traces land in it (an interrupt, SIGTERM
        # included, ends it KILLED; a SIGKILLed one is ended KILLED by the next run of the folder)
        with sigterm_as_interrupt(), generate_run(config, dict(config.lms), track=track and not logged,
                                                  program_folder=program_folder) as run:
            end_stale = (lambda: end_stale_runs(run, out_dir)) if run else None
            result, notes = _generate_with_progress(config, passages=passages, program_folder=program_folder,
                                                    fresh=fresh, workers=workers, max_calls=max_calls,
                                                    max_cost=max_cost, prices=settings.prices,
                                                    parallel_attempts=parallel_attempts, engine=engine,
                                                    allow_weak_judge=allow_weak_judge,
                                                    breaker=breaker_limits(settings), on_locked=end_stale)
            run_id = log_generate(run, config, result, traced=traces) if run else logged or None
    except KeyboardInterrupt as interrupt:
        printing.interrupted(_seeds_saved(out_dir), config.seeds, out_dir, resume_command(ctx.meta.get("argv"), "generate"))
        raise typer.Exit(code=interrupt_exit_code(interrupt)) from None  # 130 for Ctrl-C, 143 for SIGTERM
    printing.notes(notes + ([f"this finished run was logged before (MLflow run {logged}); nothing new to log"]
                            if logged else []))
    if track:
        printing.tracked_run(run_id, tracking_uri)
    lm_ids = sorted(set(config.lms.values()))
    printing.generation(result, title=f"{recipe} on {corpus} (LM: {', '.join(lm_ids)})", offline="offline" in lm_ids)
    overall = result.summary["overall"]
    if overall["seeds"] and overall["failed"] == overall["seeds"]:
        printing.all_failed(overall["seeds"], result.records_path)
        raise typer.Exit(code=1)  # not bad input (2): the run ran and produced nothing


def _with_notes(function, *args, **options):
    """`function`'s result, and the UserWarnings our code raised meanwhile as notes to print."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = function(*args, **options)
    return result, [str(note.message) for note in caught
                    if issubclass(note.category, UserWarning) and note.filename.startswith(PACKAGE)]


def _seeds_saved(out_dir: Path) -> int:
    """Finished seeds on disk: one whole line each in records.jsonl."""
    records = out_dir / RECORDS_FILE
    return records.read_bytes().count(b"\n") if records.is_file() else 0


def _program_folder(program: Optional[str]) -> Optional[Path]:
    if not program:
        return None
    if ":/" in program:
        tracking.configure_tracking(root=ARTIFACTS)  # the program lives in the MLflow store
    return resolve_program(program)


def _generate_with_progress(config: GenerateConfig, **options) -> tuple[GenerateResult, list[str]]:
    """Run `generate` under a progress bar; the UserWarnings our code raised meanwhile, as notes to print after."""
    with printing.progress_bar(TextColumn("accepted {task.fields[accepted]}")) as progress:
        # --accepted: the number of seeds is not known before, so the bar counts accepted pairs instead
        total = config.accepted or config.seeds
        task = progress.add_task("accepted pairs" if config.accepted else "generating", total=total, accepted=0)
        accepted = 0

        def advance(record: dict) -> None:
            nonlocal accepted
            accepted += record["accepted"]
            progress.update(task, advance=record["accepted"] if config.accepted else 1, accepted=accepted)

        return _with_notes(generate, config, on_record=advance, **options)
