"""Spend survives kills: a `sage generate` over the wire SIGKILLed five times at seeded random moments, then re-run
plainly, reports the tokens and cost of the same run uninterrupted, and leaves no MLflow run RUNNING.

The offline LM behind a real HTTP server on 127.0.0.1 makes every call a real request with real usage, and the
LM is a provider model (`openai/...`), so DSPy's disk cache is on as in a user's run: the calls a killed process
paid for come back from the cache on resume, with no usage, and only the run's ledger (spend.jsonl) knows
they were paid.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

from mlflow import MlflowClient

from server_fixture import offline_servers

SEEDS, KILLS = 5, 5
MODEL = "openai/sage-offline"
PRICES = f'[prices]\n"{MODEL}" = {{ input = 1.0, output = 4.0 }}\n'  # made-up USD per 1M tokens


def run_command(server, out: str) -> list[str]:
    return [sys.executable, "-m", "sage_dspy", "generate", "--seeds", str(SEEDS), "--k", "2", "--rounds", "1",
            "--lm", MODEL, "--api-base", server.api_base, "--lm-seed", "0", "--config", "prices.toml", "--out", out]


def paid_lines(ledger) -> int:
    return ledger.read_bytes().count(b"\n") if ledger.exists() else 0


def test_five_sigkills_then_a_plain_rerun_report_the_uninterrupted_spend(workdir):
    (workdir / "prices.toml").write_text(PRICES)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    base = {**os.environ, "COLUMNS": "200", "OPENAI_API_KEY": "sk-test-kill-chain", "MLFLOW_TRACKING_URI": store}
    with offline_servers(workdir / "server", ["--latency", "0.01"]) as (server,):
        reference_env = {**base, "DSPY_CACHEDIR": str(workdir / "cache-reference")}
        subprocess.run(run_command(server, "reference"), env=reference_env, check=True, capture_output=True,
                       timeout=300)

        env, ledger = {**base, "DSPY_CACHEDIR": str(workdir / "cache-killed")}, workdir / "killed" / "spend.jsonl"
        rng, kills = random.Random(21), 0
        for _ in range(KILLS):
            process = subprocess.Popen(run_command(server, "killed"), env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            wanted, deadline = paid_lines(ledger) + rng.randint(2, 10), time.monotonic() + 120
            while paid_lines(ledger) < wanted and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.15))  # anywhere in a call, between calls, or mid-write
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(timeout=30)
        finished = subprocess.run(run_command(server, "killed"), env=env, capture_output=True, text=True,
                                  timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert kills == KILLS  # each one landed while the run was still going

    def total(folder: str) -> dict:
        return json.loads((workdir / folder / "summary.json").read_text())["usage"]["total"]

    uninterrupted, resumed = total("reference"), total("killed")
    for key in ("prompt_tokens", "completion_tokens", "cost_usd"):
        assert abs(resumed[key] - uninterrupted[key]) <= 0.01 * uninterrupted[key], (key, resumed, uninterrupted)

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("sage-dspy").experiment_id
    statuses = sorted(run.info.status for run in client.search_runs([experiment]))
    assert statuses == ["FINISHED"] * 2 + ["KILLED"] * KILLS  # each killed session's run, ended by the next
