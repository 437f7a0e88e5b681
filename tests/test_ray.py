"""`generate --ray` on a local Ray cluster (2 CPUs, shared by every test here): the records of a plain run, a
budget that stops cleanly and resumes, an actor killed by its PID mid-run, and the run folder's lock against a
second driver; `evaluate --ray`: the plain records, one connection for all its recipes. The LM is the offline
one over HTTP with a small latency, so seeds are really in flight."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from sage_dspy.cli.app import app  # noqa: E402
from sage_dspy.runs.config import GenerateConfig  # noqa: E402
from sage_dspy.runs.folder import run_settings  # noqa: E402
from sage_dspy.runs.generate import generate  # noqa: E402
from sage_dspy.scale.ray_seeds import RayEngine  # noqa: E402
from server_fixture import offline_servers  # noqa: E402

KEY = "sk-test-not-a-secret"
SEEDS, WORKERS = 8, 4
LM = {"model": "openai/sage-offline", "seed": 0}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local cluster for the module, started as `--ray` starts one; its workers inherit the key and a
    DSPy cache folder of their own from this environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", KEY)
        patch.setenv("DSPY_CACHEDIR", str(tmp_path_factory.mktemp("ray-dspy-cache")))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with offline_servers(tmp_path_factory.mktemp("ray-server"), ["--latency", "0.05"]) as (server,):
        yield server


def cli_args(server, out: Path, *extra) -> list[str]:
    return ["generate", "--seeds", str(SEEDS), "--k", "2", "--rounds", "1", "--no-track", "--out", str(out),
            "--lm", LM["model"], "--api-base", server.api_base, "--lm-seed", "0", "--workers", str(WORKERS),
            *map(str, extra)]


def sage(*args) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    return result.output


def records(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]


def settings(out: Path) -> dict:
    return json.loads((out / "config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def plain_folder(server, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "run"
    sage(*cli_args(server, out))
    return out


@pytest.fixture(scope="module")
def plain(plain_folder) -> list[dict]:
    return records(plain_folder)


def test_a_ray_run_gives_the_plain_records_and_its_budget_stops_cleanly(cluster, server, plain, plain_folder,
                                                                        workdir):
    sage(*cli_args(server, workdir / "ray", "--ray"))
    assert records(workdir / "ray") == plain  # seed order and content
    # --ray is no run setting: a folder started without it resumes with it, and the other way round
    assert run_settings(settings(workdir / "ray")) == run_settings(settings(plain_folder))

    budget = plain[0]["lm_calls"] + 1  # spent once the first seed or two finish
    sage(*cli_args(server, workdir / "budget", "--ray", "--max-calls", budget))
    summary = json.loads((workdir / "budget" / "summary.json").read_text())
    stopped = records(workdir / "budget")
    assert "LM-call budget" in summary["stopped"] and 1 <= len(stopped) < SEEDS
    by_seed = {record["seed_id"]: record for record in plain}
    assert all(record == {**by_seed[record["seed_id"]], "kept": record["kept"],
                          "drop_reason": record["drop_reason"]} for record in stopped)  # whole, as the plain run's
    sage(*cli_args(server, workdir / "budget"))  # resumed without Ray or budget: the rest, and the same records
    assert records(workdir / "budget") == plain


def test_an_actor_killed_by_its_pid_mid_run_loses_only_its_seeds(cluster, server, plain, workdir):
    engine, finished = RayEngine(), []

    def kill_one(record: dict) -> None:
        finished.append(record["seed_id"])
        if len(finished) == 1:  # the driver waits here: the other seeds are still in flight on the actors
            os.kill(engine.pids[0], signal.SIGKILL)

    config = GenerateConfig(seeds=SEEDS, k=2, rounds=1, out_dir=workdir / "killed", lms=dict.fromkeys(
        ("generator", "solver", "judge", "reviser"), LM["model"]), lm_options={"api_base": server.api_base,
                                                                               "seed": 0})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", KEY)
        with pytest.warns(UserWarning, match="ran again after the Ray actor"):
            generate(config, workers=WORKERS, engine=engine, on_record=kill_one)
    assert engine.reruns >= 1
    assert sorted(finished) == sorted(record["seed_id"] for record in plain)  # each seed reported once
    assert records(workdir / "killed") == plain
    with pytest.raises(ProcessLookupError):
        os.kill(engine.pids[0], 0)


def test_the_run_folder_lock_holds_against_a_second_driver(cluster, server, plain, workdir):
    out, second = workdir / "locked", {}

    def second_driver(record: dict) -> None:
        if not second:  # the first driver holds the folder, waiting here, while a second one tries it
            second["done"] = subprocess.run(
                [sys.executable, "-m", "sage_dspy", *cli_args(server, out, "--ray")], capture_output=True,
                text=True, timeout=120, env={**os.environ, "OPENAI_API_KEY": KEY, "COLUMNS": "200"})

    config = GenerateConfig(seeds=SEEDS, k=2, rounds=1, out_dir=out, lms=dict.fromkeys(
        ("generator", "solver", "judge", "reviser"), LM["model"]), lm_options={"api_base": server.api_base,
                                                                               "seed": 0})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", KEY)
        runner = threading.Thread(target=generate, args=(config,), kwargs={
            "workers": WORKERS, "engine": RayEngine(), "on_record": second_driver})
        runner.start()
        runner.join(300)
    assert not runner.is_alive()
    refused = second["done"]
    assert refused.returncode == 2, refused.stderr
    assert f"is being written by another sage process (pid {os.getpid()})" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert records(out) == plain


EVALUATE = ["evaluate", "--recipes", "generator_only,sage", "--seeds", "3", "--targets", "2-3", "--k", "2",
            "--rounds", "1", "--no-track", "--lm", LM["model"], "--lm-seed", "0"]


def evaluated(folder: Path) -> dict[str, list[dict]]:
    """Each recipe's records, from its run folder (named by corpus, recipe, seeds, draw and a settings hash)."""
    runs = folder / "artifacts" / "runs"
    return {recipe: records(next(runs.glob(f"bundled-{recipe}-3seeds-seed0-*")))
            for recipe in ("generator_only", "sage")}


def test_evaluate_on_ray_gives_the_plain_records_and_joins_the_cluster_once_for_all_recipes(cluster, server, workdir,
                                                                                            monkeypatch):
    evaluate = [*EVALUATE, "--api-base", server.api_base]
    (workdir / "plain").mkdir(), (workdir / "ray").mkdir()  # evaluate writes under ./artifacts: one each
    monkeypatch.chdir(workdir / "plain")
    sage(*evaluate)  # one call in flight: the records every other way of running must give
    connects, connect = [], RayEngine.connect

    def counted(engine):
        connects.append(engine.address)
        return connect(engine)

    monkeypatch.setattr(RayEngine, "connect", counted)
    monkeypatch.chdir(workdir / "ray")
    output = sage(*evaluate, "--workers", WORKERS, "--ray")
    assert "generator_only: done" in output and "sage: done" in output  # both ran on Ray, neither was reused
    assert connects == [""]  # one local cluster for both recipes, not one per recipe
    assert evaluated(workdir / "ray") == evaluated(workdir / "plain")
