"""`sage generate --accepted N`: seeds from one fixed stream until N pairs are kept (duplicates removed), the
same pairs however many workers run and however often the run is killed and resumed."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from itertools import islice

import pytest
from typer.testing import CliRunner

from cli_helpers import assert_one_line_error
from sage_dspy.cli.app import app
from sage_dspy.runs.accepted import BEYOND, AcceptedGoal
from sage_dspy.runs.seeds import LEGACY_ORDER, draw_seeds, first_seeds, key_of, seed_stream
from sage_dspy.search.corpus import load_corpus

ENV = {"COLUMNS": "200"}
FAST = ["--k", "2", "--rounds", "1", "--no-track"]
GOAL = 30


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


USAGE = ("lm_calls", "prompt_tokens", "completion_tokens", "lm_usage")


def comparable(records, leave_out=()):
    return [{k: v for k, v in r.items() if k not in ("seconds", *leave_out)} for r in records]


def stream(passages, count, targets, random_seed):
    return list(islice(seed_stream(passages, targets, random_seed), count))


def test_the_seed_stream_is_fixed_whatever_count_is_drawn(tiny_passages):
    bundled = load_corpus("bundled")
    short, long = stream(bundled, 7, (2, 5), 3), stream(bundled, 40, (2, 5), 3)
    assert short == long[:7]
    every = stream(list(tiny_passages), 100, (2, 5), 0)
    assert sorted(t.passage.id for t in every) == sorted(p.id for p in tiny_passages)  # each passage once
    assert [key_of(t) for t in stream(bundled, 5, (2, 5), 4)] != [key_of(t) for t in long[:5]]


def test_seeds_m_keeps_the_draws_of_earlier_runs():
    # folders written before `--seeds` read the stream resume to their own seeds (pinned here)
    assert [key_of(t) for t in first_seeds(load_corpus("bundled"), 4, (2, 5), 0, LEGACY_ORDER)] == [
        "w099|5|date", "w108|4|date", "w011|4|entity", "w067|3|entity"]
    assert first_seeds(load_corpus("bundled"), 4, (2, 5), 0, LEGACY_ORDER) == draw_seeds(
        load_corpus("bundled"), 4, (2, 5), 0)


@pytest.mark.parametrize("random_seed", [0, 3])
def test_the_first_m_seeds_are_the_same_whatever_is_asked(random_seed):
    """--seeds 2 and --seeds 4 gave seed w099 targets 2 and 5: the targets were drawn after the whole sample.
    Now --seeds M is the stream's first M seeds: passage, target and answer type."""
    bundled = load_corpus("bundled")
    runs = {count: first_seeds(bundled, count, (2, 5), random_seed) for count in (1, 2, 4, 40)}
    for count in (1, 2, 4):
        assert runs[count] == runs[40][:count]
    assert runs[40] == list(seed_stream(bundled, (2, 5), random_seed))[:40]  # what --accepted reads
    old = draw_seeds(bundled, 2, (2, 5), 0), draw_seeds(bundled, 4, (2, 5), 0)
    assert old[0] != old[1][:2]  # the bug, kept only for old folders


def test_an_old_seeds_folder_resumes_to_its_own_seeds_and_a_new_one_reads_the_stream(tmp_path):
    from sage_dspy.runs.config import GenerateConfig, with_seed_order_of

    config = GenerateConfig(seeds=4, out_dir=tmp_path)
    assert with_seed_order_of(config, tmp_path / "config.json") == config  # nothing there yet
    new = config.to_dict()
    assert new["seed_order"] == "stream"
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in new.items() if k != "seed_order"}))
    old = with_seed_order_of(config, tmp_path / "config.json")
    assert old.seed_order == LEGACY_ORDER and "seed_order" not in old.to_dict()  # the folder's settings match
    (tmp_path / "config.json").write_text(json.dumps(new))
    assert with_seed_order_of(config, tmp_path / "config.json") == config


def _records(tasks, questions, drop=()):
    return [{"seed_id": t.passage.id, "target": t.target, "requested_answer_type": t.answer_type,
             "question": q, "error": "", "drop_reason": "too easy" if i in drop else "", "kept": False}
            for i, (t, q) in enumerate(zip(tasks, questions))]


def test_the_prefix_holding_the_goal_does_not_depend_on_finishing_order():
    tasks = list(seed_stream(load_corpus("bundled"), (2, 5), 0))[:8]
    questions = ["a?", "b?", "A?", "c?", "d?", "e?", "f?", "g?"]  # position 2 repeats position 0
    outcomes = []
    for order in ([0, 1, 2, 3, 4, 5, 6, 7], [7, 5, 3, 1, 6, 4, 2, 0], random.Random(1).sample(range(8), 8)):
        goal = AcceptedGoal(3)
        for position, task in enumerate(tasks):
            goal.place(position, task)
        records = _records(tasks, questions, drop={1})
        for position in order:
            goal.add(dict(records[position]))
        outcomes.append(([r["kept"] for r in goal.prefix], [r["drop_reason"] for r in goal.beyond()]))
    # a, b (too easy), A (a duplicate of a), c, d: three kept pairs take the first five seeds
    assert outcomes[0] == ([True, False, False, True, True], [BEYOND] * 3)
    assert outcomes[1] == outcomes[0] and outcomes[2] == outcomes[0]


def test_accepted_30_keeps_exactly_30_from_the_smallest_prefix_of_the_stream(workdir):
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "--accepted", str(GOAL), "--out", "accepted", *FAST], env=ENV)
    assert result.exit_code == 0, result.output
    summary = json.loads((workdir / "accepted" / "summary.json").read_text())
    took = summary["accepted"]["seeds"]
    assert summary["accepted"] == {"goal": GOAL, "kept": GOAL, "seeds": took, "short": ""}
    assert f"accepted: {GOAL} kept pairs took {took} seeds" in result.stdout
    assert summary["overall"]["kept"] == GOAL and summary["overall"]["seeds"] == took
    assert len(lines(workdir / "accepted" / "dataset.jsonl")) == GOAL
    records = lines(workdir / "accepted" / "records.jsonl")
    assert records[took - 1]["kept"]  # the smallest prefix: its last seed is the 30th kept pair
    expected = [key_of(t) for t in stream(load_corpus("bundled"), took, (2, 5), 0)]  # the stream's first seeds
    assert [f"{r['seed_id']}|{r['target']}|{r['requested_answer_type']}" for r in records[:took]] == expected


def test_workers_finish_in_any_order_and_keep_the_same_pairs(workdir):
    runner = CliRunner()
    for out, workers in (("one", "1"), ("four", "4")):
        result = runner.invoke(app, ["generate", "--accepted", "6", "--out", out, "--workers", workers, *FAST],
                               env=ENV)
        assert result.exit_code == 0, result.output
    one, four = lines(workdir / "one" / "records.jsonl"), lines(workdir / "four" / "records.jsonl")
    took = json.loads((workdir / "one" / "summary.json").read_text())["accepted"]["seeds"]
    assert comparable(four[:took]) == comparable(one[:took])
    assert all(r["drop_reason"] == BEYOND and not r["kept"] for r in four[took:])  # saved, not part of the run
    assert (workdir / "four" / "dataset.jsonl").read_text() == (workdir / "one" / "dataset.jsonl").read_text()


def test_sigkill_mid_run_then_the_same_command_resumes_to_the_same_30(workdir):
    command = [sys.executable, "-m", "sage_dspy", "generate", "--accepted", str(GOAL), *FAST]
    env = {**os.environ, "COLUMNS": "200"}
    reference = CliRunner().invoke(app, ["generate", "--accepted", str(GOAL), "--out", "reference", *FAST], env=ENV)
    assert reference.exit_code == 0, reference.output
    records = workdir / "killed" / "records.jsonl"
    rng = random.Random(11)
    for _ in range(2):  # two kills, each once the run has made some progress
        process = subprocess.Popen([*command, "--out", "killed"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        before = len(records.read_text().splitlines()) if records.exists() else 0
        wanted, deadline = before + rng.randint(3, 8), time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if records.exists() and len(records.read_bytes().split(b"\n")) - 1 >= wanted:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert not (workdir / "killed" / "summary.json").exists()
    subprocess.run([*command, "--out", "killed"], check=True, env=env, capture_output=True, timeout=300)
    assert (workdir / "killed" / "dataset.jsonl").read_text() == (workdir / "reference" / "dataset.jsonl").read_text()
    assert len(lines(workdir / "killed" / "dataset.jsonl")) == GOAL
    # usage aside: without a response cache (the offline LM), the calls of the seeds the kills cut short were
    # made twice, and the spend ledger counts both (tests/test_kill_chain.py: with a cache, once)
    assert comparable(lines(records), USAGE) == comparable(lines(workdir / "reference" / "records.jsonl"), USAGE)


def test_a_corpus_too_small_for_the_goal_says_so(workdir, tiny_corpus_file):
    result = CliRunner().invoke(app, ["generate", "--corpus", str(tiny_corpus_file), "--accepted", "50",
                                      "--out", "small", *FAST], env=ENV)
    assert result.exit_code == 0, result.output
    outcome = json.loads((workdir / "small" / "summary.json").read_text())["accepted"]
    assert outcome["kept"] < 50 and "the corpus ran out" in outcome["short"]
    assert f"of 50 kept pairs; the corpus ran out after {outcome['seeds']} seeds" in result.stdout


def test_seeds_and_accepted_together_are_refused_in_one_line(workdir):
    result = CliRunner().invoke(app, ["generate", "--seeds", "3", "--accepted", "3", *FAST], env=ENV)
    assert_one_line_error(result, "--seeds and --accepted both given")
    assert not (workdir / "artifacts").exists()


def test_a_call_budget_stops_short_and_the_same_command_without_it_reaches_the_same_pairs(workdir):
    runner = CliRunner()
    whole = runner.invoke(app, ["generate", "--accepted", "5", "--out", "whole", *FAST], env=ENV)
    assert whole.exit_code == 0, whole.output
    stopped = runner.invoke(app, ["generate", "--accepted", "5", "--out", "budget", "--max-calls", "30", *FAST],
                            env=ENV)
    assert stopped.exit_code == 0, stopped.output
    outcome = json.loads((workdir / "budget" / "summary.json").read_text())["accepted"]
    assert outcome["kept"] < 5 and outcome["short"].startswith("LM-call budget of 30 spent after")
    assert "stopped: LM-call budget of 30 spent" in stopped.stdout
    finished = runner.invoke(app, ["generate", "--accepted", "5", "--out", "budget", *FAST], env=ENV)
    assert finished.exit_code == 0, finished.output
    assert (workdir / "budget" / "dataset.jsonl").read_text() == (workdir / "whole" / "dataset.jsonl").read_text()
    assert comparable(lines(workdir / "budget" / "records.jsonl")) == comparable(lines(workdir / "whole" /
                                                                                         "records.jsonl"))
