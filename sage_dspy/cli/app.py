"""The `sage` command line: parse, call a library function, print. Bad input is one line and exit code 2."""

import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rich.table import Table

from sage_dspy.optimizers import OPTIMIZERS, UnknownOptimizerError
from sage_dspy.programs import RECIPES, UnknownRecipeError
from sage_dspy.runs.compile import CompileConfig, check_optimizer_budget, check_seed_count, compile_program
from sage_dspy.search.corpus import CorpusError, load_corpus
from sage_dspy.lm.settings import Layer, LMSettings, load_settings
from sage_dspy.lm.roles import ALL_ROLES, ROLES, LMConfigError
from sage_dspy.method.loop import PROTOCOLS
from sage_dspy.lm.pricing import UnknownPriceError, require_prices
from sage_dspy.runs.generate import GenerateConfig, LMUnreachableError, ProgramMismatchError, generate
from sage_dspy.tracking import compare
from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.sources import ProgramSourceError, resolve_program
from sage_dspy.cli.printing import evaluation_table, summary_table, usage_lines
from sage_dspy.runs.folder import RunMismatchError
from sage_dspy.runs.evaluate import DEFAULT_RECIPES, evaluate_recipes
from sage_dspy.runs.solve import SolveConfig, solve
from sage_dspy.runs.evaluate_report import target_rows, write_report
from sage_dspy.runs.evaluate_report import rows as report_rows
from sage_dspy.tracking.run_logging import log_compile, log_evaluate, log_generate

app = typer.Typer(help="sage-dspy: verified, difficulty-steered deep-search QA pairs (SAGE as a DSPy program).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True)
out = Console()
USER_ERRORS = (CorpusError, LMConfigError, UnknownRecipeError, UnknownOptimizerError, LMUnreachableError,
               ProgramMismatchError, RunMismatchError, UnknownPriceError)  # config.ConfigError is an LMConfigError


@app.callback()
def root() -> None:
    """Generate, compile and evaluate SAGE programs. Every command runs offline by default."""


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)  # "[lm]" is no markup
    raise typer.Exit(code=2)


def parse_targets(text: str) -> tuple[int, int]:
    """"2-5" or "3" -> (low, high), each within 1..10."""
    parts = text.replace("..", "-").split("-")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        low = high = 0
    if not (1 <= low <= high <= 10):
        fail(f"target range {text!r} is not valid: give two numbers within 1..10 such as 2-5, low before high")
    return low, high


# Options every command that builds real LMs takes; keys come from the provider's environment variable only.
# Unset options fall back to the environment (SAGE_*), then the --config file, then the defaults (config.py).
ConfigFile = Annotated[Optional[Path], typer.Option("--config", envvar="SAGE_CONFIG", help="TOML file of LM "
                                                    "settings per role and prices (never keys; see README)")]
ApiBase = Annotated[Optional[str], typer.Option("--api-base", help="endpoint of an OpenAI-compatible server "
                                                                   "(vLLM, Ollama, llama.cpp, ...)")]
MaxTokens = Annotated[Optional[int], typer.Option("--max-tokens", min=1, help="most tokens one LM reply may "
                                                                              "have (every role)")]
LmSeed = Annotated[Optional[int], typer.Option("--lm-seed", help="sampling seed; attempt k sends seed + k "
                                                                  "(for providers that honour seeds)")]
LmTimeout = Annotated[Optional[float], typer.Option("--lm-timeout", min=1, help="seconds one LM request may take")]
LmRetries = Annotated[Optional[int], typer.Option("--lm-retries", min=0, help="DSPy's retries on 429/5xx/timeouts "
                                                                               "(exponential backoff; default 3)")]


def lm_settings(config_file: Optional[Path], models: dict[str, Optional[str]], *, lm: Optional[str] = None,
                api_base: Optional[str] = None, max_tokens: Optional[int] = None, seed: Optional[int] = None,
                timeout: Optional[float] = None, retries: Optional[int] = None) -> LMSettings:
    """The options given (`lm` for every role, `models` per role) over the environment, the file, the defaults."""
    shared = {"model": lm, "api_base": api_base, "max_tokens": max_tokens, "seed": seed, "timeout": timeout,
              "retries": retries}
    options = Layer({key: value for key, value in shared.items() if value is not None},
                    {role: {"model": model} for role, model in models.items() if model})
    try:
        return load_settings(config_file, os.environ, options)
    except LMConfigError as error:
        fail(str(error))


PROTOCOL_HELP = ("how each pair is checked: 'lean' stops its attempts once one makes it too easy and judges "
                 "normalised matches without a call; 'paper' runs all K attempts and has the LM judge every answer")


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        fail(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    return protocol


@app.command("generate")
def generate_command(
    corpus: Annotated[str, typer.Option(help="'bundled', a .jsonl/.json/.parquet/.csv file, a folder of "
                                             ".txt/.md files, or a Hugging Face dataset name")] = "bundled",
    seeds: Annotated[int, typer.Option(min=1, help="how many seed passages to draw")] = 40,
    targets: Annotated[str, typer.Option(help="target searches S, drawn per seed from this range")] = "2-5",
    recipe: Annotated[str, typer.Option(help=f"program recipe: {', '.join(RECIPES)}")] = "sage",
    lm: Annotated[Optional[str], typer.Option(help="LM for every role: 'offline' (the default) or a dspy.LM "
                                                   "model string")] = None,
    generator_lm: Annotated[Optional[str], typer.Option(help="LM for the generator only")] = None,
    solver_lm: Annotated[Optional[str], typer.Option(help="LM for the search agent only")] = None,
    judge_lm: Annotated[Optional[str], typer.Option(help="LM for the answer judge only")] = None,
    reviser_lm: Annotated[Optional[str], typer.Option(help="LM for the reviser only")] = None,
    rounds: Annotated[int, typer.Option(min=0, max=10, help="revision rounds R after the first")] = 3,
    k: Annotated[int, typer.Option(min=1, max=32, help="search-agent attempts per question")] = 4,
    random_seed: Annotated[int, typer.Option("--seed", help="seed for drawing passages and targets")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for records.jsonl, dataset.jsonl, summary")] =
        Path("artifacts/runs/latest"),
    text_field: Annotated[Optional[str], typer.Option(help="corpus field holding the passage text")] = None,
    title_field: Annotated[Optional[str], typer.Option(help="corpus field holding the title")] = None,
    id_field: Annotated[Optional[str], typer.Option(help="corpus field holding the passage id")] = None,
    track: Annotated[bool, typer.Option(help="log the run to MLflow (artifacts/mlflow.db, or "
                                             "MLFLOW_TRACKING_URI)")] = True,
    program: Annotated[Optional[str], typer.Option(help="a compiled program: a folder from `sage compile`, "
                                                        "runs:/<run id>/program, models:/<id>, or "
                                                        "prompts:/<name>@<alias> or /<version>")] = None,
    traces: Annotated[bool, typer.Option(help="also log a DSPy trace per seed to MLflow (slower)")] = False,
    fresh: Annotated[bool, typer.Option(help="start over instead of resuming the run in --out")] = False,
    workers: Annotated[int, typer.Option(min=1, max=256, help="seeds run at once, and the most LM calls in "
                                                              "flight")] = 1,
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
) -> None:
    """Generate verified QA pairs that need at least S searches, and print the paper's table for the run."""
    low, high = parse_targets(targets)
    if recipe not in RECIPES:
        fail(f"unknown program recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    fields = {name: value for name, value in
              (("text_field", text_field), ("title_field", title_field), ("id_field", id_field)) if value}
    settings = lm_settings(config_file, {"generator": generator_lm, "solver": solver_lm, "judge": judge_lm,
                                         "reviser": reviser_lm}, lm=lm, api_base=api_base, max_tokens=max_tokens,
                           seed=lm_seed, timeout=lm_timeout, retries=lm_retries)
    shared_options, role_options = settings.split(ROLES)
    config = GenerateConfig(
        corpus=corpus, corpus_fields=fields, seeds=seeds, min_target=low, max_target=high, recipe=recipe,
        lms=settings.lms(ROLES), rounds=rounds, k=k, random_seed=random_seed, out_dir=out_dir,
        lm_options=shared_options, role_options=role_options, program=program or "",
        protocol=check_protocol(protocol),
    )
    if max_cost is not None:
        try:
            require_prices(config.lms.values(), settings.prices)  # before the corpus is read or any call made
        except UnknownPriceError as error:
            fail(str(error))
    try:
        if program and ":/" in program:
            tracking.configure_tracking(root=Path("artifacts"))  # the program lives in the MLflow store
        program_folder = resolve_program(program) if program else None
    except (ProgramSourceError, tracking.TrackingError) as error:
        fail(str(error))
    try:
        passages = load_corpus(corpus, **fields)  # bad input is reported before anything is created
        tracking_uri = tracking.configure_tracking(root=Path("artifacts")) if track else ""
    except (CorpusError, tracking.TrackingError) as error:
        fail(str(error))
    if track and traces:
        tracking.autolog_dspy()  # before any dspy.context is entered, or the callback is invisible
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("accepted {task.fields[accepted]}"), console=err, transient=True) as progress:
        task = progress.add_task("generating", total=seeds, accepted=0)
        accepted = 0

        def advance(record: dict) -> None:
            nonlocal accepted
            accepted += record["accepted"]
            progress.update(task, advance=1, accepted=accepted)

        try:
            with warnings.catch_warnings(record=True) as notes:
                warnings.simplefilter("always", UserWarning)
                result = generate(config, on_record=advance, passages=passages, program_folder=program_folder,
                                  fresh=fresh, workers=workers, max_calls=max_calls, max_cost=max_cost,
                                  prices=settings.prices, parallel_attempts=parallel_attempts)
        except USER_ERRORS as error:
            progress.stop()
            fail(str(error))
    for note in notes:
        if issubclass(note.category, UserWarning) and note.filename.startswith(str(Path(__file__).parents[1])):
            err.print(f"note: {note.message}", highlight=False, soft_wrap=True)
    if track:
        run_id = log_generate(config, result, {role: spec for role, spec in config.lms.items()})
        if run_id:
            out.print(f"MLflow run {run_id} in {tracking_uri} (sage ui to browse)", highlight=False)
    lm_ids = sorted(set(config.lms.values()))
    out.print(summary_table(result.summary, title=f"{recipe} on {corpus} (LM: {', '.join(lm_ids)})"))
    for line in usage_lines(result.summary["usage"]):
        out.print(line, highlight=False, markup=False)  # "[prices]" is no markup
    if result.summary["stopped"]:
        out.print(f"stopped: {result.summary['stopped']}; every finished seed is saved, re-run the same command "
                  "with a larger --max-calls or --max-cost to continue", highlight=False)
    failures = result.summary["failures"]
    if failures["seeds"] or failures["attempts"]:
        out.print(f"failures: seeds {failures['seeds'] or 'none'}; attempts {failures['attempts'] or 'none'}",
                  highlight=False)
    if "offline" in lm_ids:
        out.print("Offline LM: these numbers measure the pipeline's mechanics, not the quality of an LLM.")
    out.print(f"records: {result.records_path}\npairs:   {result.dataset_path} "
              f"({result.summary['overall']['kept']} kept)")


@app.command("evaluate")
def evaluate_command(
    corpus: Annotated[str, typer.Option(help="corpus to draw seeds from")] = "bundled",
    recipes: Annotated[str, typer.Option(help="comma-separated program recipes")] = ",".join(DEFAULT_RECIPES),
    seeds: Annotated[int, typer.Option(min=1, help="seed passages (the same for every recipe)")] = 40,
    targets: Annotated[str, typer.Option(help="target searches range (the paper: 3-7)")] = "3-7",
    lm: Annotated[Optional[str], typer.Option(help="LM for every role: 'offline' (the default) or a dspy.LM "
                                                   "model string")] = None,
    rounds: Annotated[int, typer.Option(min=0, max=10, help="revision rounds R")] = 3,
    k: Annotated[int, typer.Option(min=1, max=32, help="search-agent attempts per question")] = 4,
    random_seed: Annotated[int, typer.Option("--seed", help="seed for drawing passages and targets")] = 0,
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
) -> None:
    """Run several recipes on the same seeds and print the paper's intrinsic table by round count."""
    low, high = parse_targets(targets)
    chosen = tuple(name.strip() for name in recipes.split(",") if name.strip())
    unknown = [name for name in chosen if name not in RECIPES]
    if unknown or not chosen:
        fail(f"unknown program recipe(s) {unknown or recipes!r}: choose from {', '.join(RECIPES)}")
    settings = lm_settings(config_file, {}, lm=lm, api_base=api_base, max_tokens=max_tokens, seed=lm_seed,
                           timeout=lm_timeout, retries=lm_retries)
    shared_options, role_options = settings.split(ROLES)
    base = GenerateConfig(corpus=corpus, seeds=seeds, min_target=low, max_target=high, rounds=rounds, k=k,
                          random_seed=random_seed, lms=settings.lms(ROLES), lm_options=shared_options,
                          role_options=role_options, protocol=check_protocol(protocol))
    lm = ", ".join(sorted(set(base.lms.values())))
    try:
        passages = load_corpus(corpus)
        if track:
            tracking.configure_tracking(root=Path("artifacts"))
        results = evaluate_recipes(base, chosen, Path("artifacts/runs"), passages=passages,
                                   on_recipe=lambda name, reused: err.print(
                                       f"{name}: {'reused an earlier run' if reused else 'done'}", highlight=False))
    except (*USER_ERRORS, tracking.TrackingError) as error:
        fail(str(error))
    folder = out_dir or Path("artifacts/evaluations") / f"{base.corpus_label()}-seed{random_seed}"
    header = (f"Corpus `{corpus}`, {seeds} seeds, targets {low}-{high}, K={k}, up to {rounds} rounds, "
              f"LM `{lm}`, {protocol} protocol.")
    report = write_report(results, folder, header)
    out.print(evaluation_table(f"intrinsic evaluation on {corpus} (LM: {lm})", report_rows(results)))
    out.print(evaluation_table("per target, after the last round", target_rows(results)))
    if track:
        log_evaluate(base, results, folder)
    if "offline" in base.lms.values():
        out.print("Offline LM: these numbers measure the pipeline's mechanics, not the quality of an LLM.")
    out.print(f"report: {report}", highlight=False)


@app.command("solve")
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
        Path("artifacts/solve/latest"),
    config_file: ConfigFile = None,
    api_base: ApiBase = None,
    max_tokens: MaxTokens = None,
    lm_seed: LmSeed = None,
    lm_timeout: LmTimeout = None,
    lm_retries: LmRetries = None,
) -> None:
    """Run the search agent alone on real questions: pass@K, Avg@K and searches by hop count."""
    roles = ("solver", "judge")
    settings = lm_settings(config_file, {"solver": lm, "judge": judge_lm or lm}, api_base=api_base,
                           max_tokens=max_tokens, seed=lm_seed, timeout=lm_timeout, retries=lm_retries)
    shared_options, role_options = settings.split(roles)
    lm = settings.models["solver"]
    try:
        passages = load_corpus(corpus)
        config = SolveConfig(questions=questions, lms=settings.lms(roles), k=k, limit=limit, out_dir=out_dir,
                             lm_options=shared_options, role_options=role_options)
        with Progress(TextColumn("solving"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                      transient=True) as progress:
            task = progress.add_task("solving", total=limit)
            _, summary = solve(config, passages, on_row=lambda row: progress.advance(task))
    except USER_ERRORS as error:
        fail(str(error))
    table = Table(title=f"search agent on {questions.name} over {corpus} (LM: {lm}, K={k})")
    for column in ("hops", "questions", "pass@K %", "Avg@K", "searches (correct)", "searches / attempt"):
        table.add_column(column, justify="right")
    for name, row in summary.items():
        table.add_row(name, str(row["questions"]), f"{row['pass_at_k']:.1f}", f"{row['avg_at_k']:.2f}",
                      f"{row['searches_when_correct']:.2f}", f"{row['searches_per_attempt']:.2f}")
    out.print(table)
    if lm == "offline":
        out.print("Offline LM: its generic search strategy, not an LLM agent; the paper's strong agent needed about "
                  "2.1 searches on HotpotQA and 2.7 on MuSiQue.")
    out.print(f"answers: {out_dir / 'answers.jsonl'}", highlight=False)


@app.command("compile")
def compile_command(
    optimizer: Annotated[str, typer.Option(help=f"optimizer recipe: {', '.join(OPTIMIZERS)}")] = "gepa",
    recipe: Annotated[str, typer.Option(help=f"program recipe: {', '.join(RECIPES)}")] = "sage",
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
) -> None:
    """Compile the generator's prompts with a DSPy optimizer; print validation scores before and after."""
    low, high = parse_targets(targets)
    for kind, name, choices in (("optimizer", optimizer, OPTIMIZERS), ("program recipe", recipe, RECIPES)):
        if name not in choices:
            fail(f"unknown {kind} {name!r}: choose one of {', '.join(choices)}")
    settings = lm_settings(config_file, {"generator": lm, "reviser": lm, "solver": solver_lm, "judge": solver_lm,
                                         "reflection": reflection_lm}, api_base=api_base, max_tokens=max_tokens,
                           seed=lm_seed, timeout=lm_timeout, retries=lm_retries)
    shared_options, role_options = settings.split(ALL_ROLES)
    lm, solver_lm = settings.models["generator"], settings.models["solver"]
    config = CompileConfig(
        corpus=corpus, recipe=recipe, optimizer=optimizer, reflection_lm=settings.models["reflection"],
        lms=settings.lms(ROLES), train_size=train_size, val_size=val_size, budget=budget, min_target=low,
        max_target=high, rounds=rounds, random_seed=random_seed, lm_options=shared_options,
        role_options=role_options)
    try:  # bad input is refused before anything is created
        check_optimizer_budget(optimizer, budget, val_size)
        passages = load_corpus(corpus)
        check_seed_count(len(passages), train_size, val_size)
        tracking_uri = tracking.configure_tracking(root=Path("artifacts")) if track else ""
    except (*USER_ERRORS, tracking.TrackingError, ValueError) as error:
        fail(str(error))
    err.print(f"compiling {recipe} with {optimizer} (budget {budget})...", highlight=False)
    try:
        result = compile_program(config, passages)
    except USER_ERRORS as error:  # an LM that stops answering mid-way; anything else is a bug worth its traceback
        fail(str(error))
    if track:
        log_compile(config, result)
    table = Table(title=f"{optimizer} on {recipe} (validation, sage metric x100)")
    for column in ("before", "after", "program"):
        table.add_column(column)
    table.add_row(f"{result.before:.1f}", f"{result.after:.1f}", str(result.folder))
    out.print(table)
    if track:
        out.print(f"MLflow: {tracking_uri}; prompt versions registered under sage.*", highlight=False)
    if "offline" in (lm, solver_lm):
        out.print("Offline LM: scores measure the mechanics of compilation, not the quality of an LLM.")


prompts_app = typer.Typer(help="Prompt versions registered by `sage compile`.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs logged by `sage generate` and `sage compile`.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")
app.add_typer(runs_app, name="runs")


def _store() -> None:
    try:
        tracking.configure_tracking(root=Path("artifacts"))
    except tracking.TrackingError as error:
        fail(str(error))


@prompts_app.command("list")
def prompts_list() -> None:
    """Every prompt version, with the run and validation scores that produced it."""
    _store()
    table = Table(title="prompt versions")
    table.add_column("name", no_wrap=True)
    for column in ("version", "val.before", "val.after", "run"):
        table.add_column(column)
    for row in compare.prompt_versions():
        table.add_row(row["name"], str(row["version"]), _score(row["val.before"]), _score(row["val.after"]),
                      row["run_id"][:8])
    out.print(table)


def _score(text: str) -> str:
    try:
        return f"{float(text):.1f}"
    except ValueError:
        return text


@prompts_app.command("diff")
def prompts_diff(
    name: Annotated[str, typer.Argument(help="prompt name, e.g. sage.generator.propose.react")],
    old: Annotated[int, typer.Argument(help="older version")],
    new: Annotated[int, typer.Argument(help="newer version")],
) -> None:
    """A readable diff of two versions' instructions and demos."""
    _store()
    try:
        out.print(compare.diff_prompt(name, old, new), highlight=False, markup=False)
    except compare.NotFoundError as error:
        fail(str(error))


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[Optional[list[str]], typer.Argument(help="run ids (default: the newest runs)")] = None,
    last: Annotated[int, typer.Option(min=1, help="how many recent runs when no ids are given")] = 5,
) -> None:
    """Runs side by side: recipe, optimizer and every metric."""
    _store()
    try:
        keys, rows = compare.runs_table(run_ids or [], last=last)
    except compare.NotFoundError as error:
        fail(str(error))
    shown = [k for k in keys if k.startswith(("all.", "val."))] or keys
    table = Table(title="runs")
    for column in ("run", "name", "recipe", "optimizer", *shown):
        table.add_column(column)
    for row in rows:
        cells = [row[c] for c in ("run", "name", "recipe", "optimizer")]
        cells += ["" if row.get(k) is None else f"{row[k]:.2f}" for k in shown]
        table.add_row(*cells)
    out.print(table)


@app.command("ui")
def ui_command(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 5000,
) -> None:
    """Browse runs, compiled programs and prompt versions in the MLflow UI (127.0.0.1 only)."""
    import os
    import subprocess

    uri = tracking.configure_tracking(root=Path("artifacts"))
    # Plain `mlflow ui` deadlocks at start-up offline unless litellm uses its local cost map (set on import
    # of sage_dspy); the job runner is not needed to browse.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    out.print(f"MLflow UI for {uri} on http://127.0.0.1:{port} (Ctrl-C to stop)", highlight=False)
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", uri, "--workers", "1"]
    raise typer.Exit(subprocess.call(command, env=env))


def main() -> None:
    app(prog_name="sage")


if __name__ == "__main__":
    sys.exit(main())
