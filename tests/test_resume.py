"""Crash-safe runs: a killed `sage generate` resumes without redoing, duplicating or tearing records."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from sage_dspy.cli.app import app
from sage_dspy.runs.folder import RunFolder, RunMismatchError

ENV = {"COLUMNS": "200"}
FAST = ["--k", "2", "--rounds", "1", "--no-track"]


USAGE = ("lm_calls", "prompt_tokens", "completion_tokens", "lm_usage")


def comparable(path, leave_out=()):
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "kept", "drop_reason", *leave_out)}
            for line in path.read_text().splitlines()]


def test_a_torn_last_line_is_cut_off_and_finished_records_come_back(tmp_path):
    folder = RunFolder(tmp_path, {"seeds": 2})
    assert folder.open() == []
    folder.append({"seed_id": "a", "target": 2, "requested_answer_type": "date"})
    with folder.records_path.open("a") as sink:
        sink.write('{"seed_id": "b", "tar')  # killed mid-write
    again = RunFolder(tmp_path, {"seeds": 2})
    assert [r["seed_id"] for r in again.open()] == ["a"]
    assert folder.records_path.read_text().endswith("}\n")


def test_other_settings_in_the_same_folder_are_refused_and_fresh_starts_over(tmp_path):
    RunFolder(tmp_path, {"seeds": 2, "k": 4, "out_dir": "a"}).open()
    (tmp_path / "records.jsonl").write_text('{"seed_id": "x", "target": 2, "requested_answer_type": "date"}\n')
    assert len(RunFolder(tmp_path, {"seeds": 2, "k": 4, "out_dir": "elsewhere"}).open()) == 1  # same run
    with pytest.raises(RunMismatchError, match=r"other settings \(k\)") as error:
        RunFolder(tmp_path, {"seeds": 2, "k": 3}).open()
    assert "\n" not in str(error.value)
    (tmp_path / "mlflow.json").write_text('{"run_id": "old"}')
    assert RunFolder(tmp_path, {"seeds": 2, "k": 3}, fresh=True).open() == []
    assert not (tmp_path / "mlflow.json").exists()  # it named the MLflow run of the records just dropped


def test_resuming_finishes_only_the_missing_seeds(workdir):
    runner = CliRunner()
    whole = runner.invoke(app, ["generate", "--seeds", "5", "--out", "whole", *FAST], env=ENV)
    assert whole.exit_code == 0, whole.output
    lines = (workdir / "whole" / "records.jsonl").read_text().splitlines()
    partial = workdir / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((workdir / "whole" / "config.json").read_text())
    (partial / "records.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])  # 2 done, 1 torn
    resumed = runner.invoke(app, ["generate", "--seeds", "5", "--out", "partial", *FAST], env=ENV)
    assert resumed.exit_code == 0, resumed.output
    assert comparable(partial / "records.jsonl") == comparable(workdir / "whole" / "records.jsonl")


def test_changed_settings_are_refused_in_one_line(workdir):
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--seeds", "2", "--out", "run", *FAST], env=ENV).exit_code == 0
    result = runner.invoke(app, ["generate", "--seeds", "3", "--out", "run", *FAST], env=ENV)
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "error: run holds a run with other settings (seeds); resume it with the same command, pass another "
        "--out, or --fresh to start over"]


def test_sigkill_at_random_moments_then_resume_gives_exactly_the_requested_records(workdir):
    seeds = 10
    command = [sys.executable, "-m", "sage_dspy", "generate", "--seeds", str(seeds), *FAST]
    env = {**os.environ, "COLUMNS": "200"}
    subprocess.run([*command, "--out", "reference"], check=True, env=env, capture_output=True, timeout=300)
    records = workdir / "killed" / "records.jsonl"
    rng = random.Random(7)
    for _ in range(3):  # three kills, each once the run has made some progress
        process = subprocess.Popen([*command, "--out", "killed"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        before = len(records.read_text().splitlines()) if records.exists() else 0
        wanted, deadline = before + rng.randint(1, 2), time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if records.exists() and len(records.read_bytes().split(b"\n")) - 1 >= wanted:
                break
            time.sleep(rng.uniform(0.01, 0.1))
        time.sleep(rng.uniform(0, 0.3))  # somewhere in the next seed, maybe mid-write
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    subprocess.run([*command, "--out", "killed"], check=True, env=env, capture_output=True, timeout=300)
    resumed = comparable(records, leave_out=USAGE)
    assert len(resumed) == seeds
    assert len({(r["seed_id"], r["target"], r["requested_answer_type"]) for r in resumed}) == seeds  # no duplicates
    assert resumed == comparable(workdir / "reference" / "records.jsonl", leave_out=USAGE)
    # The offline LM has no response cache: the calls a killed process made in a seed it did not finish were
    # made again on resume, and its ledger counts both (test_kill_chain.py: with a cache, each once).
    spent = [(r["lm_calls"], r["prompt_tokens"]) for r in map(json.loads, records.read_text().splitlines())]
    uninterrupted = [(r["lm_calls"], r["prompt_tokens"]) for r in
                     map(json.loads, (workdir / "reference" / "records.jsonl").read_text().splitlines())]
    assert all(calls >= calls_then and tokens >= tokens_then
               for (calls, tokens), (calls_then, tokens_then) in zip(spent, uninterrupted))


def test_a_call_budget_stops_cleanly_and_the_same_command_with_more_continues(workdir):
    runner = CliRunner()
    reference = runner.invoke(app, ["generate", "--seeds", "6", "--out", "reference", *FAST], env=ENV)
    assert reference.exit_code == 0, reference.output
    stopped = runner.invoke(app, ["generate", "--seeds", "6", "--out", "budget", "--max-calls", "40", *FAST],
                            env=ENV)
    assert stopped.exit_code == 0, stopped.output
    assert "stopped: LM-call budget of 40 spent" in stopped.stdout
    saved = comparable(workdir / "budget" / "records.jsonl")
    assert 1 <= len(saved) < 6
    assert json.loads((workdir / "budget" / "summary.json").read_text())["stopped"]
    finished = runner.invoke(app, ["generate", "--seeds", "6", "--out", "budget", *FAST], env=ENV)
    assert finished.exit_code == 0, finished.output
    assert comparable(workdir / "budget" / "records.jsonl") == comparable(workdir / "reference" / "records.jsonl")


def test_resuming_a_finished_run_makes_no_lm_call(workdir, monkeypatch):
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--seeds", "2", "--out", "run", *FAST], env=ENV).exit_code == 0
    import sage_dspy.runs.generate as pipeline

    def no_calls(lms):
        raise AssertionError("a finished run must not call its LMs again")

    monkeypatch.setattr(pipeline, "check_lms", no_calls)
    again = runner.invoke(app, ["generate", "--seeds", "2", "--out", "run", *FAST], env=ENV)
    assert again.exit_code == 0, again.output
    assert len((workdir / "run" / "records.jsonl").read_text().splitlines()) == 2


def test_sigterm_stops_an_evaluation_with_the_resume_line_and_the_same_command_finishes_it(workdir):
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "sage_dspy", "evaluate", "--no-track", "--recipes", "sage", "--seeds", "40",
               "--k", "2", "--rounds", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(records.read_bytes().count(b"\n") for records in (workdir / "artifacts" / "runs").glob(
            "*/records.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the evaluation finished before it could be stopped"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "resume with: sage evaluate --no-track --recipes sage" in last
    assert "Traceback" not in stderr
    [records] = (workdir / "artifacts" / "runs").glob("*/records.jsonl")
    saved = records.read_bytes().count(b"\n")
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert records.read_bytes().count(b"\n") == 40 >= saved  # the same folder, resumed


def test_sigterm_is_an_interrupt_the_resume_line_exit_143_and_the_mlflow_run_killed(workdir):
    from mlflow import MlflowClient

    store = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {**os.environ, "COLUMNS": "200", "MLFLOW_TRACKING_URI": store}
    records = workdir / "run" / "records.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "sage_dspy", "generate", "--seeds", "8", "--k", "2",
                                "--rounds", "1", "--out", "run"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (records.exists() and records.read_bytes().count(b"\n")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be stopped"
    process.send_signal(signal.SIGTERM)  # what `timeout` and schedulers send
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and " of 8 seeds are saved in run; resume with: sage generate " in last
    assert "Traceback" not in stderr
    client = MlflowClient(tracking_uri=store)
    [run] = client.search_runs([client.get_experiment_by_name("sage-dspy").experiment_id])
    assert run.info.status == "KILLED"
