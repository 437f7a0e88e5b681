"""Seeds run concurrently with a bound on LM calls in flight, and give the records a sequential run gives."""

import json

import pytest
from typer.testing import CliRunner

from sage_dspy.cli.app import app
from server_fixture import offline_servers

SEEDS = 4


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """The offline LM over HTTP with 20 ms per call, so concurrent calls really overlap."""
    with offline_servers(tmp_path_factory.mktemp("slow"), ["--latency", "0.02"]) as (server,):
        yield server


def generate(server, out, workers: int):
    args = ["generate", "--seeds", str(SEEDS), "--k", "2", "--rounds", "1", "--no-track", "--out", str(out),
            "--lm", "openai/sage-offline", "--api-base", server.api_base, "--lm-seed", "0",
            "--workers", str(workers)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "OPENAI_API_KEY": "sk-test-not-a-secret"})
    assert result.exit_code == 0, result.output
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "records.jsonl").read_text().splitlines()]


def in_flight_max(server) -> int:
    return server.stats()["in_flight_max"]


def test_workers_bound_the_calls_in_flight_and_leave_the_records_unchanged(slow_server, workdir):
    sequential = generate(slow_server, workdir / "one", workers=1)
    assert in_flight_max(slow_server) == 1
    concurrent = generate(slow_server, workdir / "four", workers=3)
    assert 2 <= in_flight_max(slow_server) <= 3  # overlapping, and never more than the workers
    assert concurrent == sequential  # seed order and content, however the workers finished


def test_ctrl_c_says_it_waits_for_the_running_seeds(monkeypatch, capsys, tiny_passages):
    """Ctrl-C during a run cannot cut a seed short: one line says the command waits for the running seeds."""
    import threading

    from sage_dspy.runs import scheduler
    from sage_dspy.runs.budget import CallBudget
    from sage_dspy.runs.seeds import SeedTask

    release, finished = threading.Event(), []

    def interrupted(futures):
        release.set()  # the seed may now finish, while the pool waits for it
        raise KeyboardInterrupt

    def program(**inputs):
        release.wait(10)
        finished.append(inputs["seed"].id)
        raise RuntimeError("no LM in this test")

    monkeypatch.setattr(scheduler, "as_completed", interrupted)
    tasks = [SeedTask(tiny_passages[0], 2, "date")]
    with pytest.raises(KeyboardInterrupt):
        list(scheduler.run_seeds(program, tasks, {}, 1, CallBudget(None)))
    assert finished == [tiny_passages[0].id]  # waited for, not abandoned
    assert "interrupted: waiting for the 1 running seed(s) to finish their LM calls" in capsys.readouterr().err
