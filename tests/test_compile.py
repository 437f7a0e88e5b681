"""`compile`: the offline proposer and generator that make compilation measurable, every optimizer recipe on
small sizes, loading compiled folders, the `sage compile` / `sage generate --program` CLI, and MLflow.

Sizes were measured on the bundled corpus with the offline LM (deterministic), at k=2 and 1 revision round
(the same scores as the defaults k=4, 2 rounds, in half the time): bootstrap train 3/val 2 budget 2 (~2 s),
miprov2 3/2 budget 2 seed 1 (55.0 -> 100.0, ~3 s), gepa 5/3 budget 12 seed 2 (40.8 -> 100.0, ~3 s). The
README-scale gepa run (train 12, val 8, budget 60, defaults: 58.0 -> 69.0) takes ~20 s and is left out.
"""

import dataclasses
import json
import time
from pathlib import Path

import sage_dspy  # noqa: F401  (offline env defaults first)

import dspy
import mlflow
import mlflow.artifacts
import mlflow.genai
import pytest
from dspy.teleprompt.gepa.instruction_proposal import ProposeInstruction
from mlflow import MlflowClient

from sage_dspy.optimizers import OPTIMIZERS, UnknownOptimizerError
from sage_dspy.runs.compile import (CompileConfig, check_optimizer_budget, compile_program, heldout_examples,
                                    save_compiled, seed_examples)
from sage_dspy.search.corpus import load_corpus
from sage_dspy.search.passages import corpus_fingerprint
from sage_dspy.method.feedback import Attempt, Verdict
from sage_dspy.method.generator import Generator
from sage_dspy.lm.roles import RoleLMs, offline_lm
from sage_dspy.method.metrics import explain_verdict, sage_metric
from sage_dspy.offline.generator import CAREFUL_WORDS, COMMON_CUE_WORDS
from sage_dspy.offline.grammar import parse_question
from sage_dspy.offline.proposer import ADVICE
from sage_dspy.offline.text import content_words
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.program import build_program, PROGRAM_FILE, ProgramMismatchError
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.signatures import AnswerWithSearch, JudgeAnswer, ProposeQA, ReviseIncorrect, ReviseTooEasy
from cli_helpers import assert_one_line_error, invoke

TOO_EASY_KEY, INCORRECT_KEY = (next(words for words in ADVICE if first in words)
                               for first in ("too easy", "incorrect"))
TOO_EASY_ADVICE, INCORRECT_ADVICE = ADVICE[TOO_EASY_KEY], ADVICE[INCORRECT_KEY]
TRIGGERS = [word for words in ADVICE for word in words]
ALL_OFFLINE = dict.fromkeys(("generator", "solver", "judge", "reviser"), "offline")
# optimizer -> (train_size, val_size, budget, random_seed); see the module docstring
# (train, val, budget, seed, revision rounds). GEPA compiles the generator alone (0 rounds): with revision
# rounds the offline reviser already repairs what GEPA's advice would fix, so the gain it measures vanishes.
SIZES = {"bootstrap": (3, 2, 2, 0, 1), "miprov2": (4, 3, 4, 1, 1), "gepa": (5, 3, 12, 2, 0)}
K = 2
COMPILED_KEYS = {"generator.propose.react", "generator.propose.extract.predict", "next_pair.harden.predict",
                 "next_pair.repair.predict"}
FEEDBACK = {
    "too easy": explain_verdict(Verdict(4, True, 1, 0.5, 4), "Q?", [Attempt("a", 1, True)]),
    "incorrect": explain_verdict(Verdict(3, False, None, 0.0, 2), "Q?", [Attempt("b", 2, False)] * 2),
    "accepted": explain_verdict(Verdict(3, True, 3, 1.0, 2), "Q?", [Attempt("a", 3, True)] * 2),
}


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def bundled():
    return load_corpus("bundled")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("compile")
    return {"index_root": base / "indexes", "out_root": base / "programs"}


@pytest.fixture(scope="module")
def bundled_index(bundled, roots):
    return SearchIndex.open(bundled, root=roots["index_root"])


@pytest.fixture(scope="module")
def compiled(bundled, roots):
    """One compile per optimizer recipe, made on first use and shared by the module's tests."""
    results = {}

    def get(optimizer: str):
        if optimizer not in results:
            train, val, budget, seed, rounds = SIZES[optimizer]
            config = CompileConfig(optimizer=optimizer, train_size=train, val_size=val, budget=budget,
                                   random_seed=seed, k=K, rounds=rounds, **roots)
            results[optimizer] = (config, compile_program(config, bundled))
        return results[optimizer]

    return get






def predictor_states(program) -> dict[str, dict]:
    """dump_state of every compiled predictor, through JSON as program.json holds it."""
    return json.loads(json.dumps({name: predictor.dump_state() for name, predictor in program.named_predictors()
                                  if name in COMPILED_KEYS}))


def with_instructions(module, suffix: str, only: str | None = None):
    for name, predictor in module.named_predictors():
        if only is None or name == only:
            predictor.signature = predictor.signature.with_instructions(
                predictor.signature.instructions + "\n\n" + suffix)
    return module


# ------------------------------------------------------------------------------- 2. the offline proposer

class ProposeFromFeedback(dspy.Signature):
    """Write a better instruction for the assistant from the examples and their feedback."""

    current_instruction: str = dspy.InputField()
    examples_with_feedback: str = dspy.InputField()
    new_instruction: str = dspy.OutputField()


class ProposeLikeMipro(dspy.Signature):
    """Propose an instruction for the task."""

    basic_instruction: str = dspy.InputField()
    dataset_description: str = dspy.InputField()
    proposed_instruction: str = dspy.OutputField()


def propose(signature, instruction: str, feedback: list[str]) -> str:
    """One proposal through the real adapter and the offline engine."""
    examples = [{"Inputs": {"seed_passage": "Harbor Bridge (id: p-bridge)"},
                 "Generated Outputs": {"question": "Q?", "answer": "1851"}, "Feedback": text} for text in feedback]
    if signature.input_fields["examples_with_feedback"].annotation is str:
        examples = "\n\n".join(f"Example {n}: {e}" for n, e in enumerate(examples, 1))
    with dspy.context(lm=offline_lm()):
        return dspy.Predict(signature)(current_instruction=instruction, examples_with_feedback=examples).new_instruction


BASE = ProposeQA.instructions


def test_the_base_instruction_carries_no_failure_words():
    assert not any(word in BASE.lower() for word in TRIGGERS)  # precondition of the cases below


@pytest.mark.parametrize("signature", [ProposeFromFeedback, ProposeInstruction], ids=["own", "dspy-gepa"])
@pytest.mark.parametrize("kinds, advice", [
    (["too easy"], [TOO_EASY_ADVICE]),
    (["too easy", "accepted"], [TOO_EASY_ADVICE]),
    (["incorrect"], [INCORRECT_ADVICE]),
    (["incorrect", "too easy", "accepted"], [INCORRECT_ADVICE, TOO_EASY_ADVICE]),
    (["accepted"], []),
    (["accepted", "accepted"], []),
])
def test_proposer_appends_the_advice_the_feedback_calls_for(signature, kinds, advice):
    proposed = propose(signature, BASE, [FEEDBACK[kind] for kind in kinds])
    assert proposed == "\n\n".join([BASE, *advice])
    assert propose(signature, BASE, [FEEDBACK[kind] for kind in kinds]) == proposed  # deterministic
    assert propose(signature, proposed, [FEEDBACK[kind] for kind in kinds]) == proposed  # advice never doubles


def test_the_too_easy_advice_is_what_the_offline_generator_heeds():
    assert any(words in TOO_EASY_ADVICE.lower() for words in COMMON_CUE_WORDS)
    assert any(words in INCORRECT_ADVICE.lower() for words in CAREFUL_WORDS)


def test_proposer_answers_mipro_proposals_too():
    with dspy.context(lm=offline_lm()):
        result = dspy.Predict(ProposeLikeMipro)(basic_instruction=BASE,
                                                dataset_description="Pairs are often too easy.")
    assert result.proposed_instruction == f"{BASE}\n\n{TOO_EASY_ADVICE}"


@pytest.mark.parametrize("instruction", [ReviseIncorrect.instructions, ReviseTooEasy.instructions],
                         ids=["revise-incorrect", "revise-too-easy"])
def test_proposer_ignores_failure_words_in_the_instruction_itself(instruction):
    """Regression: the proposer once read failure words in the current instruction too, so ReviseIncorrect
    ('ambiguous') and ReviseTooEasy ('short-cut') gained advice although every example was accepted."""
    assert propose(ProposeInstruction, instruction, [FEEDBACK["accepted"]] * 2) == instruction.strip()


# ------------------------------------------------------------------ 3. the offline generator heeds advice

def write_pair(index, seed_id: str, answer_type: str, advice: str | None = None, only: str | None = None):
    generator = Generator(SearchTool(index))
    if advice:
        with_instructions(generator, advice, only)
    with dspy.context(lm=offline_lm()):
        return generator(seed=index.get(seed_id), target_searches=2, answer_type=answer_type).pair


@pytest.mark.parametrize("seed_id, answer_type", [("w004", "date"), ("w003", "entity"), ("w008", "entity"),
                                                   ("w006", "entity")])
def test_common_words_advice_gives_a_cue_without_content_words(bundled_index, seed_id, answer_type):
    plain = parse_question(write_pair(bundled_index, seed_id, answer_type).question)
    advised_pair = write_pair(bundled_index, seed_id, answer_type, TOO_EASY_ADVICE)
    advised = parse_question(advised_pair.question)
    assert plain and advised and advised_pair.answer
    assert content_words(plain.cue), plain.cue  # without the advice it picks a distinctive cue
    assert content_words(advised.cue) == [], advised.cue  # with it, a cue of common words exists and is used
    assert advised.answer_type == plain.answer_type == answer_type
    assert advised.searches_needed >= 2  # still a chain of the target length
    # the same inputs give the same pair
    assert write_pair(bundled_index, seed_id, answer_type, TOO_EASY_ADVICE).question == advised_pair.question


SWEEP = [(f"w{n:03d}", answer_type) for n in range(1, 13) for answer_type in ("date", "number", "entity")]


@pytest.fixture(scope="module")
def plain_cues(bundled_index):
    return {case: parse_question(write_pair(bundled_index, *case).question) for case in SWEEP}


# GEPA puts the advice in the writer's instruction (propose.extract.predict) only: the explorer then does not
# look for a common cue, so fewer pairs get one, but none gets worse. Counts measured on the bundled corpus.
@pytest.mark.parametrize("only, at_least", [(None, 15), ("propose.extract.predict", 8)],  # measured: 18, 11
                         ids=["every-predictor", "writer-only"])
def test_common_words_advice_never_hurts_across_seeds(bundled_index, plain_cues, only, at_least):
    improved = 0
    for case, plain in plain_cues.items():
        advised = parse_question(write_pair(bundled_index, *case, TOO_EASY_ADVICE, only).question)
        assert (plain is None) == (advised is None), case
        if plain is None:
            continue
        if not content_words(plain.cue):
            assert not content_words(advised.cue), (case, advised.cue)
        improved += bool(content_words(plain.cue)) and not content_words(advised.cue)
    assert improved >= at_least, improved


def test_without_a_common_cue_the_advised_generator_still_writes_a_pair(tiny_index):
    """No passage of the tiny corpus has a cue of common words only: the advice must not cost the pair."""
    for seed_id, answer_type in (("p-bridge", "date"), ("p-ada", "number"), ("p-ferry", "entity")):
        pair = write_pair(tiny_index, seed_id, answer_type, TOO_EASY_ADVICE)
        plan = parse_question(pair.question)
        assert plan is not None and pair.answer, pair.question
        assert content_words(plan.cue)


# --------------------------------------------------------------------------- 4. compile_program per recipe

def test_check_optimizer_budget():
    for optimizer, budget, val_size in (("gepa", 10, 1), ("bootstrap", 2, 1), ("miprov2", 2, 2)):
        check_optimizer_budget(optimizer, budget, val_size)
    for optimizer, budget, val_size, words in (("gepa", 9, 8, "at least 10"), ("bootstrap", 1, 8, "at least 2"),
                                               ("miprov2", 1, 8, "at least 2"), ("miprov2", 60, 1, "--val-size")):
        with pytest.raises(ValueError, match=words) as error:
            check_optimizer_budget(optimizer, budget, val_size)
        assert "\n" not in str(error.value)
    with pytest.raises(UnknownOptimizerError, match="bootstrap, miprov2, gepa"):
        check_optimizer_budget("magic", 60, 8)


def test_seed_examples_are_disjoint_sized_and_reproducible(bundled):
    config = CompileConfig(train_size=4, val_size=3, min_target=2, max_target=4, random_seed=5)
    train, val = seed_examples(bundled, config)
    assert (len(train), len(val)) == (4, 3)
    assert not {e.seed.id for e in train} & {e.seed.id for e in val}
    for example in train + val:
        assert 2 <= example.target_searches <= 4 and example.answer_type in ("number", "date", "entity")
        assert set(example.inputs().keys()) == {"seed", "target_searches", "answer_type"}
    again = seed_examples(bundled, config)
    assert [(e.seed.id, e.target_searches, e.answer_type) for e in again[0] + again[1]] == \
        [(e.seed.id, e.target_searches, e.answer_type) for e in train + val]
    other = seed_examples(bundled, CompileConfig(train_size=4, val_size=3, random_seed=6))
    assert [e.seed.id for e in other[0]] != [e.seed.id for e in train]


def test_held_out_seeds_are_the_same_for_every_compile_and_apart_from_train_and_validation(bundled):
    ids = lambda examples: [(e.seed.id, e.target_searches, e.answer_type) for e in examples]  # noqa: E731
    configs = [CompileConfig(train_size=4, val_size=3, random_seed=seed, rounds=rounds, eval_seeds=5)
               for seed, rounds in ((0, 2), (7, 0))]
    held = [ids(heldout_examples(list(bundled), config)) for config in configs]
    assert held[0] == held[1] and len(held[0]) == 5  # --seed and --rounds do not change them
    assert ids(heldout_examples(list(reversed(bundled)), configs[0])) == held[0]  # nor the corpus order
    for config in configs:
        train, val = seed_examples(bundled, config)
        assert not {e.seed.id for e in train + val} & {seed_id for seed_id, _, _ in held[0]}
    plain = CompileConfig(train_size=4, val_size=3)
    assert heldout_examples(list(bundled), plain) == []  # without --eval-seeds the draw is as before
    with pytest.raises(ValueError, match="--eval-seeds"):
        seed_examples(bundled, CompileConfig(train_size=4, val_size=3, eval_seeds=len(bundled)))


def test_a_corpus_too_small_for_the_seeds_is_refused_or_still_validates(tiny_passages, tmp_path):
    """Regression: validation once got only the passages left after training, so a small corpus gave an empty
    validation set and compile reported before 0.0 / after 0.0 without a word."""
    config = CompileConfig(train_size=len(tiny_passages), val_size=2, index_root=tmp_path / "indexes",
                           out_root=tmp_path / "programs")
    try:
        _, val = seed_examples(list(tiny_passages), config)
    except ValueError as error:  # refusing with a clear error is right
        assert "\n" not in str(error)
        with pytest.raises(ValueError):
            compile_program(config, list(tiny_passages))
        assert not (tmp_path / "programs").exists()
        return
    assert len(val) == config.val_size


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_compile_returns_scores_and_writes_a_versioned_folder(compiled, bundled, roots, optimizer):
    config, result = compiled(optimizer)
    assert isinstance(result.before, float) and isinstance(result.after, float)
    assert 0.0 <= result.before <= 100.0 and 0.0 <= result.after <= 100.0
    assert result.after >= result.before
    assert result.folder.parent == roots["out_root"] and result.folder.name.startswith(f"sage-{optimizer}-")
    assert {p.name for p in result.folder.iterdir()} == {PROGRAM_FILE, "config.json", "scores.json", "compile.log"}
    assert result.log_file == result.folder / "compile.log"  # what the optimizer printed, not the terminal
    saved = json.loads((result.folder / "config.json").read_text())
    train, val, budget, seed, _ = SIZES[optimizer]
    assert saved == config.to_dict()
    assert (saved["optimizer"], saved["train_size"], saved["val_size"], saved["budget"], saved["random_seed"]) == \
        (optimizer, train, val, budget, seed)
    scores = json.loads((result.folder / "scores.json").read_text())
    assert (scores["before"], scores["after"]) == (result.before, result.after)
    assert scores["corpus_fingerprint"] == corpus_fingerprint(bundled)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_compiled_state_holds_generator_and_reviser_prompts_only(compiled, bundled_index, optimizer):
    _, result = compiled(optimizer)
    state = json.loads((result.folder / PROGRAM_FILE).read_text())
    keys = set(state) - {"metadata"}
    assert keys == COMPILED_KEYS
    assert not any(key.startswith(("solver", "judge")) for key in state)  # the search agent stays frozen
    assert all(state[key]["lm"] is None for key in keys)  # prompts only: no LM, so no model or key
    # the search agent the compiled program measures with is the untouched reference
    fresh = build_program(GenerateConfig(), bundled_index, RoleLMs.from_specs(ALL_OFFLINE))
    for part in ("solver", "judge"):
        after = {n: p.dump_state() for n, p in getattr(result.program, part).named_predictors()}
        assert after == {n: p.dump_state() for n, p in getattr(fresh, part).named_predictors()}, part
        assert all(state["demos"] == [] for state in after.values())
    assert result.program.solver.answer.react.signature.instructions.startswith(AnswerWithSearch.instructions)
    assert result.program.judge.decide.signature.instructions == JudgeAnswer.instructions


def test_gepa_improves_the_generator_with_the_too_easy_advice(compiled):
    _, result = compiled("gepa")
    assert result.after > result.before
    instructions = {name: p.signature.instructions for name, p in result.program.named_predictors()}
    writer = instructions["generator.propose.extract.predict"]
    assert writer.startswith(BASE) and TOO_EASY_ADVICE in writer
    state = json.loads((result.folder / PROGRAM_FILE).read_text())
    assert TOO_EASY_ADVICE in state["generator.propose.extract.predict"]["signature"]["instructions"]


def test_miprov2_proposes_advised_instructions_and_demos(compiled):
    _, result = compiled("miprov2")
    assert result.after > result.before
    predictors = dict(result.program.named_predictors())
    assert any(TOO_EASY_ADVICE in predictors[name].signature.instructions for name in COMPILED_KEYS)
    assert sum(len(predictors[name].demos) for name in COMPILED_KEYS) >= 1


def test_compile_is_deterministic(compiled, bundled, tmp_path):
    config, first = compiled("miprov2")  # optuna and the proposals are seeded
    again = compile_program(dataclasses.replace(config, out_root=tmp_path / "again"), bundled)
    assert (again.before, again.after) == (first.before, first.after)
    assert predictor_states(again.program) == predictor_states(first.program)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_workers_change_no_compiled_prompt_and_no_score(compiled, bundled, tmp_path, optimizer):
    """--workers 4 scores four seeds at once (DSPy's num_threads, and before/after): the same program and
    scores as one at a time, whatever order the threads finish in."""
    config, one_at_a_time = compiled(optimizer)
    elsewhere = dataclasses.replace(config, out_root=tmp_path / "four")
    four = compile_program(elsewhere, bundled, workers=4)
    assert (four.before, four.after, four.heldout) == (one_at_a_time.before, one_at_a_time.after,
                                                       one_at_a_time.heldout)
    assert predictor_states(four.program) == predictor_states(one_at_a_time.program)
    assert json.loads((four.folder / "config.json").read_text()) == elsewhere.to_dict()  # not a program setting


def test_scoring_with_workers_runs_seeds_at_once_and_keeps_their_order(bundled, monkeypatch):
    """evaluate's threads: the dspy.context around the call reaches each of them, and the scores are those of
    one thread (the mean does not hide a reordering: each seed scores differently here)."""
    import threading

    from sage_dspy.runs import compile as compiling

    examples = [dspy.Example(n=n).with_inputs("n") for n in range(8)]
    at_once, peak, seen_lm, lock = [0], [0], set(), threading.Lock()
    barrier = threading.Barrier(4, timeout=10)

    def program(n):
        with lock:
            at_once[0] += 1
            peak[0] = max(peak[0], at_once[0])
        seen_lm.add(dspy.settings.lm)
        if n < 4:
            barrier.wait()  # four seeds must be running at once to get past this
        with lock:
            at_once[0] -= 1
        return n

    monkeypatch.setattr(compiling, "sage_metric", lambda example, n: dspy.Prediction(score=n / 7))
    with dspy.context(lm="the run's LM"):
        assert compiling.evaluate(program, examples, workers=4) == 100.0 * sum(n / 7 for n in range(8)) / 8
    assert peak[0] == 4 and seen_lm == {"the run's LM"}


def test_save_compiled_never_reuses_a_folder(compiled, bundled, tmp_path):
    config, result = compiled("bootstrap")
    config = dataclasses.replace(config, out_root=tmp_path)
    folders = [save_compiled(result.program, config, bundled, 1.0, 2.0) for _ in range(3)]
    assert len(set(folders)) == 3 and all((f / PROGRAM_FILE).is_file() for f in folders)


# ---------------------------------------------------------------------------------------------- 5. loading

@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_build_program_reproduces_the_compiled_prompts(compiled, bundled_index, optimizer):
    _, result = compiled(optimizer)
    lms = RoleLMs.from_specs(ALL_OFFLINE)
    loaded = build_program(GenerateConfig(), bundled_index, lms, program_folder=result.folder)
    fresh = build_program(GenerateConfig(), bundled_index, lms)
    expected = predictor_states(result.program)
    assert set(expected) == COMPILED_KEYS
    assert predictor_states(loaded) == expected
    saved = json.loads((result.folder / PROGRAM_FILE).read_text())
    assert {key: saved[key] for key in COMPILED_KEYS} == expected
    if optimizer != "bootstrap":  # the offline LM ignores demos, so bootstrap keeps the zero-shot program
        assert predictor_states(fresh) != expected  # the load really changed something


def test_compiled_prompts_load_into_a_program_over_another_corpus(compiled, tiny_index):
    _, result = compiled("gepa")
    lms = RoleLMs.from_specs(ALL_OFFLINE)
    program = build_program(GenerateConfig(k=2, rounds=1), tiny_index, lms, program_folder=result.folder)
    assert predictor_states(program) == predictor_states(result.program)
    prediction = program(seed=tiny_index.get("p-bridge"), target_searches=3, answer_type="date")
    assert prediction.pair.question and prediction.verdict.correct


def test_a_folder_compiled_for_sage_runs_its_generator_under_resample_and_says_what_it_ignores(
        compiled, bundled_index):
    _, result = compiled("bootstrap")
    with pytest.warns(UserWarning, match="next_pair.harden.predict"):
        program = build_program(GenerateConfig(recipe="resample"), bundled_index,
                                RoleLMs.from_specs(ALL_OFFLINE), program_folder=result.folder)
    state = json.loads((result.folder / PROGRAM_FILE).read_text())
    react = state["generator.propose.react"]
    assert program.generator.propose.react.signature.instructions == react["signature"]["instructions"]


def test_a_folder_missing_prompts_the_recipe_needs_is_refused(compiled, bundled_index, tmp_path):
    _, result = compiled("bootstrap")
    state = json.loads((result.folder / PROGRAM_FILE).read_text())
    del state["next_pair.harden.predict"]
    (tmp_path / PROGRAM_FILE).write_text(json.dumps(state))
    with pytest.raises(ProgramMismatchError, match="--recipe"):
        build_program(GenerateConfig(recipe="sage"), bundled_index, RoleLMs.from_specs(ALL_OFFLINE),
                      program_folder=tmp_path)


# ------------------------------------------------------------------------------------------------ 6. CLI

@pytest.fixture
def small_corpus(tiny_corpus_file):
    return tiny_corpus_file


def compile_args(optimizer="bootstrap", budget=2, train=3, val=2, *extra):
    return ["compile", "--optimizer", optimizer, "--budget", budget, "--train-size", train, "--val-size", val,
            *extra]


def test_cli_compile_prints_before_and_after_and_writes_the_folder(workdir):
    result = invoke(*compile_args(), "--no-track")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    folders = list((workdir / "artifacts" / "programs").iterdir())
    assert len(folders) == 1 and (folders[0] / PROGRAM_FILE).is_file()
    scores = json.loads((folders[0] / "scores.json").read_text())
    assert "before" in result.stdout and "after" in result.stdout
    assert f"{scores['before']:.1f}" in result.stdout and f"{scores['after']:.1f}" in result.stdout
    assert "Offline LM" in result.stdout
    assert not (workdir / "artifacts" / "mlflow.db").exists()  # --no-track touches no store


BAD_COMPILES = {
    "unknown optimizer": (compile_args("magic"), "'magic'"),
    "gepa budget too small": (compile_args("gepa", 3), "at least 10"),
    "miprov2 one validation seed": (compile_args("miprov2", 2, 3, 1), "--val-size"),
    "unknown program recipe": ([*compile_args(), "--recipe", "magic"], "'magic'"),
    "missing corpus": ([*compile_args(), "--corpus", "nope.jsonl"], "does not exist"),
    "bad targets": ([*compile_args(), "--targets", "5-2"], "target range '5-2'"),
    "corpus smaller than the seeds": ([*compile_args("bootstrap", 2, 8, 2), "--corpus", "corpus.jsonl"], "8 passages"),
}


@pytest.mark.parametrize("case", list(BAD_COMPILES))
def test_cli_compile_bad_input_exits_2_with_one_line(workdir, small_corpus, case):
    args, expected = BAD_COMPILES[case]
    result = invoke(*args, "--no-track")
    assert_one_line_error(result, expected)
    assert not (workdir / "artifacts" / "programs").exists()
    if case == "unknown optimizer":
        assert "bootstrap, miprov2, gepa" in result.stderr


def test_cli_generate_with_a_missing_program_exits_2(workdir):
    result = invoke("generate", "--program", workdir / "no-such-program", "--seeds", 1, "--no-track")
    assert_one_line_error(result, PROGRAM_FILE)
    assert not (workdir / "artifacts" / "runs").exists()


def test_cli_generate_with_a_compiled_program_on_another_corpus(compiled, workdir, small_corpus):
    _, compiled_result = compiled("gepa")
    result = invoke("generate", "--program", compiled_result.folder, "--corpus", small_corpus, "--seeds", 2,
                    "--targets", "2-3", "--out", workdir / "run", "--no-track")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (workdir / "run" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["error"] == "" for r in records)
    assert {r["seed_id"] for r in records} <= {"p-bridge", "p-ada", "p-corvel", "p-tobias", "p-ferry", "p-brenna",
                                                "p-tunnel", "p-river"}


def test_cli_generate_runs_a_sage_compiled_generator_under_resample_with_a_note(compiled, workdir, small_corpus):
    _, compiled_result = compiled("bootstrap")
    result = invoke("generate", "--program", compiled_result.folder, "--recipe", "resample", "--corpus",
                    small_corpus, "--seeds", 1, "--out", workdir / "run", "--no-track")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "next_pair.harden.predict" in notes[0] and "ignored" in notes[0]


# --------------------------------------------------------------------------------------------- 7. MLflow

def test_tracked_compiles_register_prompt_versions_and_keep_keys_out(workdir, isolated_mlflow, monkeypatch):
    canary = f"sk-canary-{time.time_ns():x}"
    monkeypatch.setenv("SAGE_CANARY_API_KEY", canary)
    first = invoke(*compile_args("bootstrap", 2, 3, 2, "--rounds", 1))
    assert first.exit_code == 0, first.output
    assert "prompt versions registered under sage." in first.stdout
    assert "before" in first.stdout and "after" in first.stdout
    second = invoke(*compile_args("bootstrap", 2, 2, 1, "--rounds", 0, "--seed", 1))
    assert second.exit_code == 0, second.output

    client = MlflowClient()
    experiment = client.get_experiment_by_name("sage-dspy")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2
    folders = {json.loads((f / "config.json").read_text())["random_seed"]: f
               for f in (workdir / "artifacts" / "programs").iterdir()}
    assert sorted(folders) == [0, 1]
    registered_by = {}  # (name, version) -> the run that registered it
    for number, run in enumerate(runs, start=1):
        folder = folders[int(run.data.params["random_seed"])]
        scores = json.loads((folder / "scores.json").read_text())
        assert run.data.metrics["val.before"] == pytest.approx(scores["before"], abs=0.01)  # rounded to 2 places
        assert run.data.metrics["val.after"] == pytest.approx(scores["after"], abs=0.01)
        assert run.data.metrics["val.gain"] == pytest.approx(scores["after"] - scores["before"], abs=0.02)
        assert run.data.tags["command"] == "compile" and run.data.params["optimizer"] == "bootstrap"
        assert run.info.run_name == f"compile-sage-bootstrap-bundled-r{2 - number}-b2-seed{number - 1}"
        listed = {a.path for a in client.list_artifacts(run.info.run_id, "program")}
        # mlflow.json: the folder names its compile run, so runs:/<id>/program does too
        assert listed == {f"program/{name}" for name in (PROGRAM_FILE, "config.json", "scores.json", "mlflow.json")}
        assert json.loads((folder / "mlflow.json").read_text()) == {"run_id": run.info.run_id}
        assert [a.path for a in client.list_artifacts(run.info.run_id, "logs")] == ["logs/compile.log"]
        versions = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="prompt_versions.json", dst_path=str(workdir / f"dl{number}")))
            .read_text())
        # one version per compiled predictor, named sage.<predictor>, and none for the frozen search agent;
        # version 1 of each is the uncompiled baseline (registered by the first compile, tagged as such), and a
        # compile registers a version only of a prompt it changed
        assert set(versions) == {f"sage.{key}" for key in COMPILED_KEYS}
        assert set(versions.values()) <= ({1} if number == 1 else {1, 2})
        linked = json.loads(run.data.tags["mlflow.linkedPrompts"])
        assert sorted((p["name"], int(p["version"])) for p in linked) == sorted(versions.items())
        state = json.loads((folder / PROGRAM_FILE).read_text())
        for name, version in versions.items():
            prompt = mlflow.genai.load_prompt(f"prompts:/{name}/{version}")
            if version == 1:
                assert prompt.tags["baseline"] == "true" and "run_id" not in prompt.tags
                continue
            registered_by.setdefault((name, version), run.info.run_id)
            assert prompt.tags["run_id"] == registered_by[(name, version)] and prompt.tags["optimizer"] == "bootstrap"
            assert prompt.template.startswith(state[name.removeprefix("sage.")]["signature"]["instructions"].strip())
    registered = {p.name for p in mlflow.genai.search_prompts(filter_string="name LIKE 'sage.%'")}
    assert registered == {f"sage.{key}" for key in COMPILED_KEYS}

    # the first compile again changes no prompt: no new version, its run linked to the versions of the first
    count = {name: len(client.search_prompt_versions(name)) for name in registered}
    third = invoke(*compile_args("bootstrap", 2, 3, 2, "--rounds", 1))
    assert third.exit_code == 0, third.output
    assert {name: len(client.search_prompt_versions(name)) for name in registered} == count
    again = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert again.data.tags["prompts.changed"] == "none"
    assert sorted(json.loads(again.data.tags["mlflow.linkedPrompts"]), key=str) == \
        sorted(json.loads(runs[0].data.tags["mlflow.linkedPrompts"]), key=str)

    # the canary key is in no byte of the store: sqlite db (and WAL), every artifact, every program folder
    files = [p for p in (workdir / "artifacts").rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files)
    assert any(BASE[:40].encode() in p.read_bytes() for p in files if p.name == "mlflow.db")  # the scan reads it
    assert [str(p) for p in files if canary.encode() in p.read_bytes()] == []


@pytest.mark.parametrize("case", ["unknown optimizer", "gepa budget too small", "miprov2 one validation seed",
                                  "corpus smaller than the seeds"])
def test_cli_compile_bad_input_touches_no_store(workdir, small_corpus, isolated_mlflow, case):
    """Regression: the budget and --val-size checks once ran after the MLflow store was created."""
    args, expected = BAD_COMPILES[case]
    result = invoke(*args)  # tracking on (the default)
    assert_one_line_error(result, expected)
    assert not (workdir / "artifacts" / "mlflow.db").exists()


# ------------------------------------------------------------------------------ GEPA's temporary log_dir

def gepa_folders(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith("sage-gepa-")]


def test_gepa_removes_its_log_dir_when_the_compile_ends(bundled, roots, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    train, val, budget, seed, rounds = SIZES["gepa"]
    config = CompileConfig(optimizer="gepa", train_size=train, val_size=val, budget=budget, random_seed=seed,
                           k=K, rounds=rounds, index_root=roots["index_root"], out_root=tmp_path / "programs")
    assert compile_program(config, bundled).after >= 0
    assert gepa_folders(tmp_path) == []


def test_gepa_removes_its_log_dir_when_the_compile_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    seen = []

    def fails_mid_compile(self, student, **kwargs):
        seen.append(Path(self.log_dir).is_dir())
        raise RuntimeError("the reflection LM went away")

    monkeypatch.setattr(dspy.GEPA, "compile", fails_mid_compile)
    from sage_dspy.optimizers import load_optimizer
    with pytest.raises(RuntimeError, match="went away"):
        load_optimizer("gepa").compile(dspy.Predict("question -> answer"), trainset=[], valset=[],
                                       metric=sage_metric, budget=12, reflection_lm=offline_lm())
    assert seen == [True] and gepa_folders(tmp_path) == []
