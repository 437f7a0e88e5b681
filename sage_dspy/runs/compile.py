"""`compile` as a library call: optimise the generator's prompts (proposal and revision) against the metric.

The search agent and the judge stay fixed, as in the paper: they are marked compiled, which DSPy optimizers
skip. Seeds for training and validation are drawn from the corpus with a fixed seed.
"""

import contextvars
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dspy

from sage_dspy.breaker import Breaker, BreakerLimits, raise_if_tripped, watching
from sage_dspy.environment import ARTIFACTS
from sage_dspy.errors import SageError
from sage_dspy.optimizers import load_optimizer
from sage_dspy.search.corpus_index import open_corpus
from sage_dspy.search.passages import corpus_fingerprint, Passage
from sage_dspy.lm.roles import RoleLMs, build_lm, loggable_options
from sage_dspy.method.failures import error_kind, is_service_kind
from sage_dspy.method.metrics import sage_metric
from sage_dspy.runs.config import GenerateConfig, identified
from sage_dspy.runs.library_logs import library_output
from sage_dspy.runs.preflight import check_retriever
from sage_dspy.runs.program import PROGRAM_FILE, build_program
from sage_dspy.answers import ANSWER_TYPES
from sage_dspy.search.identity import retriever_settings
from sage_dspy.search.tool import open_searcher



@dataclass(frozen=True)
class CompileConfig:
    corpus: str = "bundled"
    recipe: str = "sage"
    optimizer: str = "bootstrap"
    lms: dict[str, str] = field(default_factory=lambda: dict.fromkeys(
        ("generator", "solver", "judge", "reviser"), "offline"))
    reflection_lm: str = "offline"
    lm_options: dict = field(default_factory=dict)  # every role: api_base, max_tokens, seed, timeout, num_retries
    role_options: dict[str, dict] = field(default_factory=dict)  # one role (reflection too): api_base,
    # temperature, max_tokens
    train_size: int = 12
    val_size: int = 8
    budget: int = 60  # GEPA: metric calls; MIPROv2: trials; bootstrap: candidate programs (random search)
    min_target: int = 2
    max_target: int = 5
    k: int = 4
    rounds: int = 2  # the paper found 2 rounds served training best
    random_seed: int = 0
    out_root: Path = ARTIFACTS / "programs"
    index_root: Path = ARTIFACTS / "indexes"
    retriever: str = ""  # a retrieval server's URL (search/remote.py); "" searches the embedded index
    retriever_index: str | None = None  # which index it serves (search/identity.py); None: not asked yet
    eval_seeds: int = 0  # held-out seeds, the same for every compile on this corpus, scored before and after

    def to_dict(self) -> dict:
        settings = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        del settings["retriever"], settings["retriever_index"]
        settings.update(retriever_settings(self.retriever, self.retriever_index))
        settings["lm_options"] = loggable_options(self.lm_options)
        settings["role_options"] = {role: loggable_options(o) for role, o in self.role_options.items()}
        return settings


@dataclass
class CompileResult:
    before: float
    after: float
    folder: Path
    program: dspy.Module
    heldout: dict = field(default_factory=dict)  # {"before", "after", "seeds"} with --eval-seeds
    notes: list[str] = field(default_factory=list)  # what the reader of the scores should know
    log_file: Path | None = None  # what DSPy, GEPA and tqdm printed meanwhile
    student: dspy.Module | None = None  # the uncompiled program the optimizer started from (the baseline)
    started: float = 0.0  # time.time() when the compile began: its MLflow run spans the compile, not the logging

    @property
    def gain(self) -> float:
        return self.after - self.before


HELDOUT_DRAW = "sage-dspy held-out seeds"  # not --seed: every compile on a corpus sets aside the same ones
LOG_FILE = "compile.log"


class CompileSettingsError(SageError, ValueError):
    """Compile settings that cannot work (a budget, a seed count); the message names the option to change."""


def check_optimizer_budget(optimizer: str, budget: int, val_size: int) -> None:
    """Refuse a budget the optimizer cannot run with before any seed is drawn (CompileSettingsError, one line)."""
    recipe = load_optimizer(optimizer)
    if budget < recipe.MIN_BUDGET:
        raise CompileSettingsError(f"a budget of {budget} is too small for {optimizer}: it needs at least "
                                   f"{recipe.MIN_BUDGET}; raise --budget")
    if optimizer == "miprov2" and val_size < 2:
        raise CompileSettingsError("miprov2 needs at least 2 validation seeds; raise --val-size")


def check_seed_count(passages: int, train_size: int, val_size: int, eval_seeds: int = 0) -> None:
    """Train, validation and held-out seeds are distinct passages: refuse a corpus too small for all."""
    if passages < train_size + val_size + eval_seeds:
        held = f" + {eval_seeds} held-out" if eval_seeds else ""
        raise CompileSettingsError(f"the corpus has {passages} passages but {train_size + val_size + eval_seeds} "
                                   f"seeds were asked for ({train_size} train + {val_size} validation{held}); "
                                   "lower --train-size/--val-size" + ("/--eval-seeds" if eval_seeds else ""))


def _examples(passages: Sequence[Passage], config: "CompileConfig", rng: random.Random) -> list:
    return [dspy.Example(seed=p, target_searches=rng.randint(config.min_target, config.max_target),
                         answer_type=rng.choice(ANSWER_TYPES)).with_inputs("seed", "target_searches", "answer_type")
            for p in passages]


def heldout_examples(passages: Sequence[Passage], config: "CompileConfig") -> list:
    """`eval_seeds` seeds drawn from the corpus by a fixed draw (passages in id order, not --seed): the same
    for every compile on this corpus and target range, so their scores compare across runs."""
    if not config.eval_seeds:
        return []
    rng = random.Random(HELDOUT_DRAW)
    return _examples(rng.sample(sorted(passages, key=lambda p: p.id), config.eval_seeds), config, rng)


def seed_examples(passages: Sequence[Passage], config: CompileConfig) -> tuple[list, list]:
    """Disjoint train and validation seeds (passage, target, answer type), reproducible from the seed."""
    wanted = config.train_size + config.val_size
    check_seed_count(len(passages), config.train_size, config.val_size, config.eval_seeds)
    if config.eval_seeds:  # the held-out seeds are set aside first; without them the draw is as before
        held = {example.seed.id for example in heldout_examples(passages, config)}
        passages = [p for p in passages if p.id not in held]
    rng = random.Random(config.random_seed)
    examples = _examples(rng.sample(passages, wanted), config, rng)
    return examples[:config.train_size], examples[config.train_size:]


def evaluate(program: dspy.Module, devset: list, workers: int = 1) -> float:
    """Mean metric score on the devset, in percent; `workers` seeds at once (each thread gets a copy of this
    context, so the dspy.context around the call reaches it). A void seed (a backend failed at the
    infrastructure) is no score at all, neither good nor bad: the mean is over the others."""
    def score(example) -> float | None:
        try:
            prediction = program(**example.inputs())
        except Exception as error:
            if is_service_kind(error_kind(error)):
                return None
            raise
        return sage_metric(example, prediction).score

    if workers <= 1:  # one at a time on this thread, as compile scored before --workers
        scores = [score(example) for example in devset]
    else:
        contexts = [contextvars.copy_context() for _ in devset]  # copied here, in the caller's thread
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sage-score") as pool:
            scores = list(pool.map(lambda context, example: context.run(score, example), contexts, devset))
    scores = [value for value in scores if value is not None]
    return 100.0 * sum(scores) / len(scores) if scores else 0.0


def compile_program(config: CompileConfig, passages: Sequence[Passage] | None = None,
                    verbose: bool = False, workers: int = 1, breaker: BreakerLimits | None = None) -> CompileResult:
    """Compile, score on the validation (and held-out) seeds and save the folder. What the libraries print
    goes to the folder's compile.log (and the terminal too with `verbose`). `workers`: seeds scored at once,
    by the optimizer (DSPy's num_threads) and before/after; it changes how long a compile waits on the LMs,
    not what it finds (tests/test_compile.py), so it is no setting of the compiled program. The retriever is
    checked before the folder is made; a backend that fails during the compile trips `breaker` (BackendDown,
    and no program is written: its scores would measure the dead backend)."""
    config = identified(config)  # config.json names the index the program was compiled against
    passages = passages if passages is not None else open_corpus(config.corpus, retriever=config.retriever,
                                                                  root=config.index_root)
    check_seed_count(len(passages), config.train_size, config.val_size, config.eval_seeds)  # before any folder
    check_retriever(config.retriever)
    started = time.time()
    folder = new_folder(config)
    with library_output(folder / LOG_FILE, verbose=verbose), watching(Breaker(breaker)):
        try:
            result = _compile(config, passages, folder, workers)
        except Exception:  # an optimizer that gave up on the errors of a dead backend: say which, in one line
            raise_if_tripped(_no_program(folder))
            raise
    result.log_file, result.started = folder / LOG_FILE, started
    return result


def _compile(config: CompileConfig, passages: Sequence[Passage], folder: Path, workers: int = 1) -> CompileResult:
    index = open_searcher(passages, config.retriever, config.index_root)
    lms = RoleLMs.from_specs(config.lms, role_options=config.role_options, lanes=RoleLMs.lanes_for(workers),
                             **config.lm_options)
    loop_config = GenerateConfig(corpus=config.corpus, recipe=config.recipe, k=config.k, rounds=config.rounds,
                                 retriever=config.retriever)
    student = build_program(loop_config, index, lms).freeze_search_agent()
    trainset, valset = seed_examples(passages, config)
    heldout = heldout_examples(passages, config)
    recipe = load_optimizer(config.optimizer)
    reflection = build_lm(config.reflection_lm, "reflection",
                          **{**config.lm_options, **config.role_options.get("reflection", {})})
    # The optimizer's own calls (proposals, reflections, bootstrapped teachers) use the generator's LM.
    with dspy.context(lm=lms.lms["generator"]):
        before = evaluate(student, valset, workers)
        compiled = recipe.compile(student, trainset=trainset, valset=valset, metric=sage_metric,
                                  budget=config.budget, reflection_lm=reflection, seed=config.random_seed,
                                  num_threads=workers)
        after = evaluate(compiled, valset, workers)
        scores = {"before": evaluate(student, heldout, workers), "after": evaluate(compiled, heldout, workers),
                  "seeds": len(heldout)} if heldout else {}
    notes = [recipe.SEARCH_SCORE] if getattr(recipe, "SEARCH_SCORE", "") else []
    raise_if_tripped(_no_program(folder))
    save_compiled(compiled, config, passages, before, after, folder, heldout=scores)
    return CompileResult(before, after, folder, compiled, heldout=scores, notes=notes, student=student)


def _no_program(folder: Path) -> str:
    return f"no program written ({folder} holds the compile's log only)"


def new_folder(config: CompileConfig) -> Path:
    """A new versioned folder under out_root: <recipe>-<optimizer>-<stamp>[-n]."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = config.out_root / f"{config.recipe}-{config.optimizer}-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = config.out_root / f"{config.recipe}-{config.optimizer}-{stamp}-{suffix}"
    folder.mkdir(parents=True)
    return folder


def save_compiled(program: dspy.Module, config: CompileConfig, passages, before: float, after: float,
                  folder: Path | None = None, heldout: dict | None = None) -> Path:
    """The program's DSPy state, the resolved config and the scores, in `folder` (a new one by default)."""
    folder = folder or new_folder(config)
    program.save(str(folder / PROGRAM_FILE))
    (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    scores = {"before": before, "after": after, "metric": "sage_metric mean x100",
              "corpus_fingerprint": corpus_fingerprint(passages), **({"heldout": heldout} if heldout else {})}
    (folder / "scores.json").write_text(json.dumps(scores, indent=2), encoding="utf-8")
    return folder


