"""`generate` as a library call: seeds in, verified pairs and the paper's table out. The CLI is a thin shell."""

import contextvars
import json
import random
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

from sage_dspy.programs import load_recipe
from sage_dspy.search.corpus import Passage, corpus_fingerprint, load_corpus
from sage_dspy.method.feedback import is_service_error
from sage_dspy.lm.inflight import call_slots, in_lane
from sage_dspy.lm.roles import RoleLMs, loggable_options
from sage_dspy.method.loop import ServiceUnavailable
from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.runs.records import record_for, mark_kept
from sage_dspy.lm.pricing import Price, price_table, require_prices, usage_cost
from sage_dspy.runs.summary import models_of, summarize, usage_summary
from sage_dspy.search.index import SearchIndex, SearchTool
from sage_dspy.runs.folder import RunFolder, record_key, seed_key
from sage_dspy.lm.usage import counting_usage
from sage_dspy.errors import SageError

ANSWER_TYPES = ("number", "date", "entity")
PROGRAM_FILE = "program.json"  # a compiled program folder's DSPy state


class LMUnreachableError(SageError, RuntimeError):
    pass


class ProgramMismatchError(SageError, ValueError):
    pass


@dataclass(frozen=True)
class SeedTask:
    passage: Passage
    target: int
    answer_type: str


@dataclass(frozen=True)
class GenerateConfig:
    corpus: str = "bundled"
    corpus_fields: dict[str, str] = field(default_factory=dict)  # text_field / title_field / id_field
    seeds: int = 40
    min_target: int = 2
    max_target: int = 5
    recipe: str = "sage"
    lms: dict[str, str] = field(default_factory=lambda: {"generator": "offline", "solver": "offline",
                                                          "judge": "offline", "reviser": "offline"})
    lm_options: dict = field(default_factory=dict)  # every role: api_base, max_tokens, seed, timeout, num_retries
    role_options: dict[str, dict] = field(default_factory=dict)  # one role: api_base, temperature, max_tokens
    program: str = ""  # the compiled program's source, when one replaces the recipe's prompts
    rounds: int = 3
    k: int = 4
    protocol: str = "lean"  # how pairs are checked: "lean" (early stop, judge shortcut) or "paper" (loop.PROTOCOLS)
    random_seed: int = 0
    out_dir: Path = Path("artifacts/runs/latest")
    index_root: Path = Path("artifacts/indexes")
    search_k: int = 3

    def to_dict(self) -> dict:
        settings = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        settings["lm_options"] = loggable_options(self.lm_options)
        settings["role_options"] = {role: loggable_options(o) for role, o in self.role_options.items()}
        if not self.role_options:
            del settings["role_options"]  # runs that set nothing per role read as before the setting existed
        return settings

    def corpus_label(self) -> str:
        """A short name for the corpus in folder names: 'bundled', or the file or folder name."""
        return Path(self.corpus.rstrip("/")).stem or "corpus"


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


def draw_seeds(passages: list[Passage], count: int, targets: tuple[int, int], random_seed: int) -> list[SeedTask]:
    """Random seed passages; per seed a target drawn from the range and an answer type (the paper's recipe)."""
    rng = random.Random(random_seed)
    chosen = rng.sample(passages, min(count, len(passages)))
    return [SeedTask(p, rng.randint(*targets), rng.choice(ANSWER_TYPES)) for p in chosen]


def build_program(config: GenerateConfig, index: SearchIndex, lms: RoleLMs, program_folder: Path | None = None,
                  parallel_attempts: bool = False):
    """The recipe's program over this corpus; a compiled folder's prompts replace the defaults."""
    recipe = load_recipe(config.recipe)
    program = recipe.build(SearchTool(index, k=config.search_k), k=config.k, max_rounds=config.rounds, lms=lms)
    program.checking(config.protocol, parallel_attempts)
    if program_folder is not None:
        load_compiled_prompts(program.freeze_search_agent(), Path(program_folder) / PROGRAM_FILE)
    return program


def load_compiled_prompts(program, state_file: Path) -> None:
    """Load a compiled state (generator and reviser prompts; the search agent is frozen). A program needing
    prompts the state lacks is refused; prompts it has no place for (a sage reviser loaded into a baseline
    recipe) are ignored with a warning, so a compiled generator can run under any recipe."""
    state = json.loads(state_file.read_text(encoding="utf-8"))
    needed = {name for name, _ in program.named_predictors()}
    missing, unused = needed - set(state), set(state) - needed - {"metadata"}
    if missing:
        raise ProgramMismatchError(
            f"{state_file.parent} was compiled for another program recipe (no prompts for {sorted(missing)}); "
            "pass --recipe with the recipe it was compiled from (see its config.json)")
    if unused:
        warnings.warn(f"this recipe has no place for the compiled prompts {sorted(unused)}; they are ignored",
                      stacklevel=2)
    program.load(str(state_file))


def key_of(task: SeedTask) -> str:
    return seed_key(task.passage.id, task.target, task.answer_type)


@dataclass
class CallBudget:
    """The run's budgets: LM calls (`limit`) and cost in USD (`max_cost`, at `prices`); resumed seeds count as
    spent. No new seed starts once either is spent; seeds already running finish and are saved, so nothing
    paid for is lost."""

    limit: int | None
    spent: int = 0
    max_cost: float | None = None
    cost: float = 0.0
    prices: dict = field(default_factory=dict)  # model id -> pricing.Price, for every model in use

    def allows_more(self) -> bool:
        return not self.spent_budget()

    def spent_budget(self) -> str:
        """Which budget is spent: 'calls', 'cost' or ''."""
        if self.limit is not None and self.spent >= self.limit:
            return "calls"
        if self.max_cost is not None and self.cost >= self.max_cost:
            return "cost"
        return ""

    def charge(self, record: dict) -> None:
        self.spent += record.get("lm_calls", 0)
        if self.max_cost is not None:
            self.cost += usage_cost(record.get("lm_usage", []), self.prices) or 0.0

    def stop_reason(self, finished: int, total: int) -> str:
        kind = self.spent_budget()
        if finished >= total or not kind:
            return ""
        spent = (f"LM-call budget of {self.limit} spent" if kind == "calls"
                 else f"cost budget of ${self.max_cost:g} spent (${self.cost:.4f})")
        return f"{spent} after {finished} of {total} seeds"


def run_seeds(program, tasks: list[SeedTask], lm_ids: dict[str, str], workers: int, budget: CallBudget):
    """Yield each seed's record as it finishes. Seeds run on `workers` threads, and at most `workers` LM
    calls are in flight however many attempts run at once (the bound a provider's rate limit needs). No seed
    starts once the budget is spent. The program is shared: its modules hold no per-call state, and role LMs
    are set per call through dspy.context."""
    workers, pending = max(workers, 1), enumerate(tasks)
    with call_slots(workers), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sage-seed") as pool:
        running = set()
        while True:
            while len(running) < workers and budget.allows_more():
                number, task = next(pending, (None, None))
                if task is None:
                    break
                # A copy of this context per seed carries the call slots (and any dspy.context) into the thread;
                # seeds take the role LMs' connection lanes in turn.
                running.add(pool.submit(contextvars.copy_context().run, _run_in_lane, number, program, task, lm_ids))
            if not running:
                return
            finished = next(as_completed(running))
            running.remove(finished)
            record = finished.result()  # run_seed records failures itself; it does not raise
            budget.charge(record)
            yield record


def _run_in_lane(lane: int, program, task: SeedTask, lm_ids: dict[str, str]) -> dict:
    with in_lane(lane):
        return run_seed(program, task, lm_ids)


def run_seed(program, task: SeedTask, lm_ids: dict[str, str]) -> dict:
    """One seed through the loop; a failure becomes the record's `error`, never an exception."""
    started, prediction, error = time.perf_counter(), None, ""
    with counting_usage() as spent:
        try:
            prediction = program(seed=task.passage, target_searches=task.target, answer_type=task.answer_type)
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"[:500]
    record = record_for(task, prediction, lm_ids, error=error)
    record.update(spent, seconds=round(time.perf_counter() - started, 3))
    return record


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
    index = SearchIndex.open(passages, root=config.index_root)
    program = build_program(config, index, lms, program_folder, parallel_attempts)
    tasks = draw_seeds(list(index.passages), config.seeds, (config.min_target, config.max_target),
                       config.random_seed)
    run = RunFolder(config.out_dir, config.to_dict(), fresh=fresh)
    finished = run.open()
    # A seed the LM service failed (after DSPy's retries) is tried again; the cache serves its finished calls.
    done = {record_key(r): r for r in finished if not failed_at_service(r)}
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
    done = {key: _slim(record) for key, record in done.items()}  # the end needs no transcripts: memory stays flat
    for record in run_seeds(program, missing, lms.ids(), workers, budget):
        run.append(record)  # in finishing order: on disk as soon as it is done
        done[record_key(record)] = _slim(record)
        if on_record:
            on_record(record)
    records = [done[key_of(t)] for t in tasks if key_of(t) in done]  # seed order, however workers finished
    records_path = run.records_path
    mark_kept(records)
    dataset_path = config.out_dir / "dataset.jsonl"
    _rewrite_records(records_path, dataset_path, records)
    summary = summarize(records)
    summary["stopped"] = budget.stop_reason(len(records), len(tasks))
    summary["usage"] = usage_summary(records, {**in_use, **price_table(models_of(records), prices)})
    summary["corpus"] = {"source": config.corpus, "passages": len(passages),
                         "fingerprint": corpus_fingerprint(passages)}
    (config.out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return GenerateResult(summary, records_path, dataset_path)


def _slim(record: dict) -> dict:
    """What the end of a run reads from a record (dedupe, summary, usage, budget): everything but the rounds'
    transcripts, of which the summary reads only the attempts' errors (`failures_by_kind`)."""
    rounds = [{"attempts": [{"error": a["error"]} for a in past.get("attempts", []) if a.get("error")]}
              for past in record.get("rounds", [])]
    return {**record, "rounds": rounds}


def _rewrite_records(records_path: Path, dataset_path: Path, decided: list[dict]) -> None:
    """records.jsonl in seed order with each seed's verdict (`kept`, `drop_reason` from mark_kept), and
    dataset.jsonl, streamed from the lines the run appended: one full record in memory at a time. A seed's
    last line wins (a seed the service failed and a later run retried has two)."""
    wanted, offsets = {record_key(r) for r in decided}, {}
    with records_path.open("rb") as source:
        offset = 0
        for line in source:
            if line.strip():
                key = record_key(json.loads(line))
                if key in wanted:
                    offsets[key] = offset
            offset += len(line)
        records_partial = records_path.with_suffix(records_path.suffix + ".partial")
        dataset_partial = dataset_path.with_suffix(dataset_path.suffix + ".partial")
        with records_partial.open("w", encoding="utf-8") as records_out, \
                dataset_partial.open("w", encoding="utf-8") as dataset_out:
            for verdict in decided:
                source.seek(offsets[record_key(verdict)])
                record = json.loads(source.readline())
                record.update(kept=verdict["kept"], drop_reason=verdict["drop_reason"])
                records_out.write(json.dumps(record, ensure_ascii=False) + "\n")
                if record["kept"]:
                    dataset_out.write(json.dumps(_dataset_row(record), ensure_ascii=False) + "\n")
    records_partial.replace(records_path)  # write beside, then rename: a crash leaves the previous files whole
    dataset_partial.replace(dataset_path)


def failed_at_service(record: dict) -> bool:
    """The seed failed because the LM service did (rate limits, 5xx, timeouts after DSPy's retries), not
    because of anything in the seed."""
    error = record.get("error") or ""
    return is_service_error(error) or error.startswith(ServiceUnavailable.__name__)


def check_lms(lms: RoleLMs) -> None:
    """One tiny call per distinct real LM before the run, so a wrong endpoint or key fails in a second with one
    clear line instead of turning every seed into a failure."""
    checked = set()
    for role, lm in lms.lms.items():
        if lm.model == MODEL_NAME or lm.model in checked:
            continue
        checked.add(lm.model)
        try:
            lm("Reply with the word ok.")
        except Exception as error:
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise LMUnreachableError(
                f"the {role} LM {lm.model!r} did not answer ({type(error).__name__}: {reason}); check the model "
                "name, --api-base, and the provider's API key variable") from None


def _dataset_row(record: dict) -> dict:
    """The kept pair alone, as a training or evaluation example."""
    keys = ("question", "answer", "answer_type", "target", "searches", "supporting_ids", "seed_id", "lms")
    return {key: record[key] for key in keys}
