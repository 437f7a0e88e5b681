"""`generate` as a library call: seeds in, verified pairs and the paper's table out. The CLI is a thin shell."""

import json
import random
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from programs import load_recipe
from sage_dspy.corpus import Passage, corpus_fingerprint, load_corpus
from sage_dspy.lms import RoleLMs, loggable_options
from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.records import record_for, mark_kept
from sage_dspy.report import summarize
from sage_dspy.retrieval import SearchIndex, SearchTool
from sage_dspy.run_store import RunFolder, record_key, seed_key
from sage_dspy.usage import add_tokens, counting_usage

ANSWER_TYPES = ("number", "date", "entity")
PROGRAM_FILE = "program.json"  # a compiled program folder's DSPy state


class LMUnreachableError(RuntimeError):
    pass


class ProgramMismatchError(ValueError):
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
    lm_options: dict = field(default_factory=dict)  # api_base, seed, timeout, num_retries for real LMs
    program: str = ""  # the compiled program's source, when one replaces the recipe's prompts
    rounds: int = 3
    k: int = 4
    random_seed: int = 0
    out_dir: Path = Path("artifacts/runs/latest")
    index_root: Path = Path("artifacts/indexes")
    search_k: int = 3

    def to_dict(self) -> dict:
        settings = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        return {**settings, "lm_options": loggable_options(self.lm_options)}

    def corpus_label(self) -> str:
        """A short name for the corpus in folder names: 'bundled', or the file or folder name."""
        return Path(self.corpus.rstrip("/")).stem or "corpus"


@dataclass
class GenerateResult:
    records: list[dict]
    summary: dict
    records_path: Path
    dataset_path: Path


def draw_seeds(passages: list[Passage], count: int, targets: tuple[int, int], random_seed: int) -> list[SeedTask]:
    """Random seed passages; per seed a target drawn from the range and an answer type (the paper's recipe)."""
    rng = random.Random(random_seed)
    chosen = rng.sample(passages, min(count, len(passages)))
    return [SeedTask(p, rng.randint(*targets), rng.choice(ANSWER_TYPES)) for p in chosen]


def build_program(config: GenerateConfig, index: SearchIndex, lms: RoleLMs, program_folder: Path | None = None):
    """The recipe's program over this corpus; a compiled folder's prompts replace the defaults."""
    recipe = load_recipe(config.recipe)
    program = recipe.build(SearchTool(index, k=config.search_k), k=config.k, max_rounds=config.rounds, lms=lms)
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
    """An LM-call budget for the run (resumed seeds' calls count as spent). No new seed starts once it is
    spent; seeds already running finish and are saved, so nothing paid for is lost."""

    limit: int | None
    spent: int = 0

    def allows_more(self) -> bool:
        return self.limit is None or self.spent < self.limit

    def charge(self, record: dict) -> None:
        self.spent += record.get("lm_calls", 0)


def run_seeds(program, tasks: list[SeedTask], lm_ids: dict[str, str], workers: int, budget: CallBudget):
    """Yield each seed's record as it finishes. Seeds run on `workers` threads; each seed's LM calls are
    sequential, so at most `workers` calls are in flight (the bound a provider's rate limit needs). No seed
    starts once the budget is spent. The program is shared: its modules hold no per-call state, and role LMs
    are set per call through dspy.context."""
    workers, pending = max(workers, 1), iter(tasks)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sage-seed") as pool:
        running = set()
        while True:
            while len(running) < workers and budget.allows_more():
                task = next(pending, None)
                if task is None:
                    break
                running.add(pool.submit(run_seed, program, task, lm_ids))
            if not running:
                return
            finished = next(as_completed(running))
            running.remove(finished)
            record = finished.result()  # run_seed records failures itself; it does not raise
            budget.charge(record)
            yield record


def run_seed(program, task: SeedTask, lm_ids: dict[str, str]) -> dict:
    """One seed through the loop; a failure becomes the record's `error`, never an exception."""
    started, prediction, error = time.perf_counter(), None, ""
    with counting_usage() as spent:
        try:
            prediction = program(seed=task.passage, target_searches=task.target, answer_type=task.answer_type)
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"[:500]
    add_tokens(spent, prediction)
    record = record_for(task, prediction, lm_ids, error=error)
    record.update(spent, seconds=round(time.perf_counter() - started, 3))
    return record


def generate(config: GenerateConfig, *, on_record: Callable[[dict], None] | None = None,
             program_folder: Path | None = None, passages: list[Passage] | None = None,
             fresh: bool = False, workers: int = 1, max_calls: int | None = None) -> GenerateResult:
    """Run every seed through the program, resuming a run of the same settings in `config.out_dir` (unless
    `fresh`); `passages` skips loading when the caller already has them."""
    passages = passages if passages is not None else load_corpus(config.corpus, **config.corpus_fields)
    index = SearchIndex.open(passages, root=config.index_root)
    lms = RoleLMs.from_specs(config.lms, **config.lm_options)
    program = build_program(config, index, lms, program_folder)
    tasks = draw_seeds(list(index.passages), config.seeds, (config.min_target, config.max_target),
                       config.random_seed)
    run = RunFolder(config.out_dir, config.to_dict(), fresh=fresh)
    done = {record_key(r): r for r in run.open()}
    for task in tasks:
        if on_record and key_of(task) in done:
            on_record(done[key_of(task)])  # resumed seeds count as progress too
    missing = [t for t in tasks if key_of(t) not in done]
    if missing:
        check_lms(lms)  # a resumed run with nothing left to do pays for no call
    budget = CallBudget(max_calls, spent=sum(r.get("lm_calls", 0) for r in done.values()))
    for record in run_seeds(program, missing, lms.ids(), workers, budget):
        run.append(record)  # in finishing order: on disk as soon as it is done
        done[record_key(record)] = record
        if on_record:
            on_record(record)
    records = [done[key_of(t)] for t in tasks if key_of(t) in done]  # seed order, however workers finished
    records_path = run.records_path
    mark_kept(records)
    _write_jsonl(records_path, records)
    dataset_path = config.out_dir / "dataset.jsonl"
    _write_jsonl(dataset_path, [_dataset_row(r) for r in records if r["kept"]])
    summary = summarize(records)
    summary["stopped"] = (f"LM-call budget of {max_calls} spent after {len(records)} of {len(tasks)} seeds"
                          if len(records) < len(tasks) else "")
    summary["corpus"] = {"source": config.corpus, "passages": len(passages),
                         "fingerprint": corpus_fingerprint(passages)}
    (config.out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return GenerateResult(records, summary, records_path, dataset_path)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write beside, then rename: a crash mid-write leaves the previous file whole."""
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    partial.replace(path)


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
