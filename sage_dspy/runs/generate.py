"""`generate` as a library call: seeds in, verified pairs and the paper's table out. The CLI is a thin shell.

The steps live beside it: config.py (the settings), seeds.py (drawing them), program.py (the recipe with any
compiled prompts), folder.py (the run on disk and what a resume skips), preflight.py (one call per real LM),
budget.py (calls and cost), scheduler.py (seeds on threads), records.py and summary.py (what is written).
"""

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from sage_dspy.lm.pricing import Price, price_table, require_prices
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.runs.budget import CallBudget
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.folder import RunFolder, done_records, record_key, rewrite_records
from sage_dspy.runs.preflight import check_lms
from sage_dspy.runs.program import build_program
from sage_dspy.runs.records import mark_kept, slim_record
from sage_dspy.runs.scheduler import run_seeds
from sage_dspy.runs.seeds import draw_seeds, key_of
from sage_dspy.runs.summary import models_of, summarize, usage_summary
from sage_dspy.search.corpus import load_corpus
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
        with self.records_path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]


def generate(config: GenerateConfig, *, on_record: Callable[[dict], None] | None = None,
             program_folder: Path | None = None, passages: list[Passage] | None = None,
             fresh: bool = False, workers: int = 1, max_calls: int | None = None,
             parallel_attempts: bool = False, max_cost: float | None = None,
             prices: dict[str, Price] | None = None) -> GenerateResult:
    """Run every seed through the program, resuming a run of the same settings in `config.out_dir` (unless
    `fresh`); `passages` skips loading when the caller already has them. `workers` bounds the LM calls in
    flight; `parallel_attempts` runs each pair's K attempts at once (same records, less waiting).
    `max_calls` and `max_cost` (USD, at `prices` over the bundled price map) stop starting seeds once spent;
    a cost budget with a model of unknown price is refused before anything runs."""
    lms = RoleLMs.from_specs(config.lms, role_options=config.role_options, lanes=RoleLMs.lanes_for(workers),
                             **config.lm_options)
    in_use = price_table(lms.ids().values(), prices)
    if max_cost is not None:
        require_prices(lms.ids().values(), prices)
    passages = passages if passages is not None else load_corpus(config.corpus, **config.corpus_fields)
    index = open_searcher(passages, config.retriever, config.index_root)
    program = build_program(config, index, lms, program_folder, parallel_attempts)
    tasks = draw_seeds(list(passages), config.seeds, (config.min_target, config.max_target),
                       config.random_seed)

    run = RunFolder(config.out_dir, config.to_dict(), fresh=fresh)
    finished = run.open()
    done = done_records(finished)
    for task in tasks:
        if on_record and key_of(task) in done:
            on_record(done[key_of(task)])  # resumed seeds count as progress too
    missing = [t for t in tasks if key_of(t) not in done]
    if missing:
        check_lms(lms)  # a resumed run with nothing left to do pays for no call
    budget = CallBudget(max_calls, max_cost=max_cost, prices=in_use)
    for record in finished:
        budget.charge(record)  # what earlier sessions of this run spent, failed seeds included
    del finished
    # The end of the run needs no transcripts: keeping only the slim records keeps memory flat.
    done = {key: slim_record(record) for key, record in done.items()}

    for record in run_seeds(program, missing, lms.ids(), workers, budget):
        run.append(record)  # in finishing order: on disk as soon as it is done
        done[record_key(record)] = slim_record(record)
        if on_record:
            on_record(record)

    records = [done[key_of(t)] for t in tasks if key_of(t) in done]  # seed order, however workers finished
    records_path = run.records_path
    mark_kept(records)
    dataset_path = config.out_dir / "dataset.jsonl"
    rewrite_records(records_path, dataset_path, records)
    summary = summarize(records)
    summary["stopped"] = budget.stop_reason(len(records), len(tasks))
    summary["usage"] = usage_summary(records, {**in_use, **price_table(models_of(records), prices)})
    summary["corpus"] = {"source": config.corpus, "passages": len(passages),
                         "fingerprint": corpus_fingerprint(passages)}
    (config.out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return GenerateResult(summary, records_path, dataset_path)
