"""`generate` as a library call: seeds in, verified pairs and the paper's table out. The CLI is a thin shell.

The steps live beside it: config.py (the settings), seeds.py (drawing them), program.py (the recipe with any
compiled prompts), folder.py (the run on disk and what a resume skips), preflight.py (one call per real LM),
budget.py (calls and cost), scheduler.py (seeds on threads), records.py and summary.py (what is written).
"""

import contextlib
import json
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from collections.abc import Sequence
from typing import Callable

from sage_dspy.breaker import Breaker, BreakerLimits, raise_if_tripped, watching
from sage_dspy.jsonl import read_jsonl
from sage_dspy.lm.pricing import Price, price_table, require_prices
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.redact import redact
from sage_dspy.runs.accepted import AcceptedGoal, tasks_until
from sage_dspy.runs.budget import CallBudget
from sage_dspy.runs.config import GenerateConfig, identified, with_seed_order_of
from sage_dspy.runs.corpus_checks import check_titles_for_offline
from sage_dspy.runs.folder import (ENDPOINTS_SETTING, SETTINGS_FILE, RunFolder, disk_full_as_one_line, done_records,
                                   failed_at_service, record_key, rewrite_records)
from sage_dspy.runs.ledger import SpendLedger
from sage_dspy.runs.preflight import check_judge, check_lms, check_retriever
from sage_dspy.runs.program import PROGRAM_FILE, build_program, compiled_prompts
from sage_dspy.runs.records import mark_kept, slim_record
from sage_dspy.runs.scheduler import run_seeds
from sage_dspy.runs.seeds import first_seeds, key_of, seed_stream
from sage_dspy.runs.summary import models_of, summarize, usage_summary
from sage_dspy.search.corpus_index import open_corpus
from sage_dspy.search.passages import corpus_fingerprint, Passage
from sage_dspy.search.tool import open_searcher


@dataclass
class GenerateResult:
    summary: dict
    records_path: Path
    dataset_path: Path

    @cached_property
    def records(self) -> list[dict]:
        """Every seed's record in seed order, read back from records.jsonl when first asked for: `generate`
        keeps only what its summary needs, so a long run's memory stays flat."""
        return read_jsonl(self.records_path, label="run records")


def generate(config: GenerateConfig, *, fresh: bool = False, workers: int = 1,
             on_locked: Callable[[], None] | None = None, **options) -> GenerateResult:
    """`_generate` (which see) holding the run folder's lock throughout: one writer per folder. The LMs are
    built first, so bad LM settings are refused before the folder is created, and so is a retriever that does not
    answer a test query."""
    lms = RoleLMs.from_specs(config.lms, role_options=config.role_options, lanes=RoleLMs.lanes_for(workers),
                             **config.lm_options)
    if options.get("program_folder") is not None:
        compiled_prompts(Path(options["program_folder"]) / PROGRAM_FILE)  # a broken file: refused before the folder
    check_retriever(config.retriever)  # a dead retriever: one line, before any LM call or folder
    config = identified(config)  # which index the retriever serves, compared on resume
    config = config if fresh else with_seed_order_of(config, config.out_dir / SETTINGS_FILE)
    run = RunFolder(config.out_dir, config.to_dict(), fresh=fresh, earlier=config.earlier_settings())
    with run.locked():
        if on_locked:
            on_locked()
        return _generate(config, run, lms, workers=workers, **options)


def _generate(config: GenerateConfig, run: RunFolder, lms: RoleLMs, *,
              on_record: Callable[[dict], None] | None = None,
              program_folder: Path | None = None, passages: Sequence[Passage] | None = None,
              workers: int = 1, max_calls: int | None = None,
              parallel_attempts: bool = False, max_cost: float | None = None,
              prices: dict[str, Price] | None = None, engine=None,
              allow_weak_judge: bool = False, breaker: BreakerLimits | None = None) -> GenerateResult:
    """Run every seed through the program, resuming a run of the same settings in `config.out_dir` (unless
    `fresh`); `passages` skips loading when the caller already has them. `workers` bounds the LM calls in
    flight; `parallel_attempts` runs each pair's K attempts at once (same records, less waiting).
    `max_calls` and `max_cost` (USD, at `prices` over the bundled price map) stop starting seeds once spent;
    a cost budget with a model of unknown price is refused before anything runs. `engine` runs the seeds
    elsewhere (sage_dspy.scale.ray_seeds.RayEngine: its `seed_runner` yields a `run_seeds`); this process still
    writes every record. Before the first seed runs, the LMs are reached and the judge calibrated
    (preflight.py): a judge that fails stops the run, unless `allow_weak_judge`. `breaker`: when a failing
    backend stops the run (BackendDown, once the seeds in flight have ended and been saved; the folder resumes)."""
    in_use = price_table(lms.ids().values(), prices)
    if max_cost is not None:
        require_prices(lms.ids().values(), prices)
    passages = passages if passages is not None else open_corpus(config.corpus, retriever=config.retriever,
                                                                  root=config.index_root, **config.corpus_fields)
    check_titles_for_offline(passages, lms.ids(), config.corpus)
    index = open_searcher(passages, config.retriever, config.index_root)
    program = build_program(config, index, lms, program_folder, parallel_attempts)
    if lms.endpoints():  # runs on the offline LM read as before
        run.settings[ENDPOINTS_SETTING] = lms.endpoints()
    # --seeds M: the seeds are known now, so a record of another seed is refused before the folder changes
    tasks = None if config.accepted else first_seeds(passages, config.seeds, (config.min_target, config.max_target),
                                                     config.random_seed, config.seed_order)
    SpendLedger.check(run)
    finished = run.open(None if tasks is None else {key_of(task) for task in tasks})
    done = done_records(finished, endpoint_changed=run.endpoint_changed)
    budget = CallBudget(max_calls, max_cost=max_cost, prices=in_use)
    for record in finished:
        budget.charge(record)  # what earlier sessions of this run spent, failed seeds included
    ledger = SpendLedger(run.folder, finished)
    budget.charge(ledger.earlier_spend())  # and what killed sessions paid on seeds they did not finish
    del finished
    # The end of the run needs no transcripts: keeping only the slim records keeps memory flat.
    done = {key: slim_record(record) for key, record in done.items()}
    calibration: dict = {}

    def preflight() -> None:  # only when a seed is left to run: a finished run pays for no call
        check_lms(lms)
        calibration.update(check_judge(lms, allow_weak_judge))

    scheduler = (engine.seed_runner(config, passages, program_folder, parallel_attempts) if engine is not None
                 else contextlib.nullcontext(run_seeds))
    with scheduler as seeds_runner, watching(Breaker(breaker)), ledger, ledger.active():
        if config.accepted:
            records, summary, beyond = _run_until_accepted(config, program, lms, passages, run, done, budget,
                                                           on_record, workers, seeds_runner, preflight, ledger)
            return _finish(config, run, records, summary | {"judge_calibration": calibration}, in_use, prices,
                           passages, ledger, beyond)
        records, summary = _run_seed_count(config, tasks, program, lms, passages, run, done, budget, on_record,
                                           workers, seeds_runner, preflight, ledger)
        return _finish(config, run, records, summary | {"judge_calibration": calibration}, in_use, prices, passages,
                       ledger)


def _run_seed_count(config: GenerateConfig, tasks: list, program, lms: RoleLMs, passages: Sequence[Passage],
                    run: RunFolder, done: dict[str, dict], budget: CallBudget, on_record, workers: int, seeds_runner,
                    preflight: Callable[[], None], ledger: SpendLedger) -> tuple[list[dict], dict]:
    """`--seeds M`: the stream's first M seeds (`tasks`), those a resumed run finished skipped."""
    if len(tasks) < config.seeds:  # one seed per passage: say so rather than quietly run fewer
        warnings.warn(f"the corpus has {len(passages)} passage(s), so this run has {len(tasks)} seed(s), "
                      f"not the {config.seeds} asked for; give a larger corpus for more")
    for task in tasks:
        if on_record and key_of(task) in done:
            on_record(done[key_of(task)])  # resumed seeds count as progress too
    missing = [t for t in tasks if key_of(t) not in done]
    if missing:
        preflight()  # a resumed run with nothing left to do pays for no call

    for record in seeds_runner(program, missing, lms.ids(), workers, budget):
        record = ledger.settle(record)  # with what killed sessions paid on this seed
        run.append(record)  # in finishing order: on disk as soon as it is done
        done[record_key(record)] = slim_record(record)
        if on_record:
            on_record(record)
    finished_well = sum(key_of(t) in done and not failed_at_service(done[key_of(t)]) for t in tasks)
    raise_if_tripped(f"{finished_well} of {len(tasks)} seeds done, saved in {config.out_dir}")

    records = [done[key_of(t)] for t in tasks if key_of(t) in done]  # seed order, however workers finished
    mark_kept(records)
    summary = summarize(records)
    summary["stopped"] = budget.stop_reason(len(records), len(tasks))
    return records, summary


def _run_until_accepted(config: GenerateConfig, program, lms: RoleLMs, passages: Sequence[Passage], run: RunFolder,
                        done: dict[str, dict], budget: CallBudget, on_record, workers: int, seeds_runner,
                        preflight: Callable[[], None], ledger: SpendLedger):
    """`--accepted N`: seeds of the stream until its smallest prefix holding N kept pairs is finished. Returns
    that prefix (marked), the summary, and the seeds that finished past it (runs/accepted.py)."""
    goal = AcceptedGoal(config.accepted)
    stream = seed_stream(passages, (config.min_target, config.max_target), config.random_seed)
    report = on_record or (lambda record: None)
    tasks = tasks_until(goal, stream, done, on_done=report, before_first_run=preflight)
    for record in seeds_runner(program, tasks, lms.ids(), workers, budget):
        record = ledger.settle(record)  # with what killed sessions paid on this seed
        run.append(record)  # in finishing order: on disk as soon as it is done
        goal.add(slim_record(record))
        report(record)
    raise_if_tripped(f"the finished seeds are saved in {config.out_dir}")
    summary = summarize(goal.prefix)
    summary["accepted"] = goal.outcome(budget.spent_phrase())
    summary["stopped"] = summary["accepted"]["short"] if budget.spent_budget() else ""
    return goal.prefix, summary, goal.beyond()


def _finish(config: GenerateConfig, run: RunFolder, records: list[dict], summary: dict, in_use: dict,
            prices: dict[str, Price] | None, passages: Sequence[Passage], ledger: SpendLedger,
            beyond: list[dict] = ()) -> GenerateResult:
    """records.jsonl in seed order (then any seeds past an --accepted prefix), dataset.jsonl, summary.json. The
    usage counts what killed sessions paid on seeds no record holds (a budget stopped the run before them)."""
    dataset_path = config.out_dir / "dataset.jsonl"
    rewrite_records(run.records_path, dataset_path, [*records, *beyond])
    unfinished = [{"accepted": False, "lm_usage": ledger.unsettled_rows()}]
    summary["usage"] = usage_summary([*records, *unfinished],
                                     {**in_use, **price_table(models_of([*records, *unfinished]), prices)})
    summary["corpus"] = {"source": config.corpus, "passages": len(passages),
                         "fingerprint": corpus_fingerprint(passages)}
    with disk_full_as_one_line(config.out_dir / "summary.json"):
        (config.out_dir / "summary.json").write_text(json.dumps(redact(summary), indent=2), encoding="utf-8")
    return GenerateResult(summary, run.records_path, dataset_path)
