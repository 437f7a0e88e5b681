"""Prices, tokens and cost per role, and the cost budget (--max-cost) that stops a run cleanly."""

import contextvars
import copy
import json
import os
import subprocess
import sys
import threading

import dspy
import pytest
from dspy.lm15 import Message, Response, TextPart, Usage

from cli_helpers import assert_one_line_error, invoke
from sage_dspy.lm.inflight import SageLM
from sage_dspy.lm.roles import ROLES, RoleLMs
from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.runs.budget import CallBudget
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.generate import generate
from sage_dspy.lm.pricing import Price, UnknownPriceError, price_of, require_prices, usage_cost
from sage_dspy.runs.summary import usage_summary
from sage_dspy.tracking.run_logging import usage_metrics
from sage_dspy.lm.usage import RoleUsageTracker, counting_usage

FAST = ["--k", "2", "--rounds", "1", "--no-track"]
OFFLINE_PRICED = '[prices]\n"offline" = { input = 1.0, output = 4.0 }\n'  # the offline LM at a made-up price


@pytest.fixture(autouse=True)
def _no_sage_environment(monkeypatch):
    for name in [name for name in os.environ if name.startswith("SAGE_")]:
        monkeypatch.delenv(name)


# ------------------------------------------------------------------------------------------- prices

def test_prices_come_from_the_config_then_the_offline_rule_then_the_bundled_map():
    configured = {"openai/gpt-4o-mini": Price(1.0, 2.0, "config")}
    assert price_of("openai/gpt-4o-mini", configured) == Price(1.0, 2.0, "config")
    bundled = price_of("openai/gpt-4o-mini")
    assert (bundled.input, bundled.output) == (0.15, 0.6) and "litellm price map" in bundled.source
    assert price_of("offline") == price_of(MODEL_NAME) == Price(0.0, 0.0, "offline")
    assert price_of("offline", {"offline": Price(1.0, 4.0, "config")}).input == 1.0  # a what-if price
    assert price_of("ollama_chat/llama3.1") is None and price_of("openai/no-such-model") is None


def test_a_price_lookup_never_imports_litellm():
    """litellm costs seconds to import; the bundled map in DSPy has the same prices."""
    code = ("import sys, sage_dspy; from sage_dspy.lm.pricing import price_of; "
            "assert price_of('anthropic/claude-sonnet-4-5').output == 15.0; "
            "assert 'litellm' not in sys.modules, 'litellm was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_cost_budget_needs_every_price_and_says_how_to_add_one():
    assert require_prices(["offline"]) == {MODEL_NAME: Price(0.0, 0.0, "offline")}
    with pytest.raises(UnknownPriceError) as error:
        require_prices(["offline", "openai/my-server-model"])
    message = str(error.value)
    assert "\n" not in message and "'openai/my-server-model'" in message
    assert '[prices] "openai/my-server-model"' in message


ROWS = [{"role": "generator", "model": "openai/a", "lm_calls": 2, "prompt_tokens": 1_000_000, "completion_tokens": 0},
        {"role": "solver", "model": "openai/b", "lm_calls": 8, "prompt_tokens": 500_000, "completion_tokens": 100_000},
        {"role": "judge", "model": "openai/a", "lm_calls": 1, "prompt_tokens": 0, "completion_tokens": 1_000_000}]
PRICES = {"openai/a": Price(2.0, 8.0, "config"), "openai/b": Price(1.0, 10.0, "config")}


def test_usage_cost_is_tokens_at_the_price_per_million():
    assert usage_cost(ROWS, PRICES) == pytest.approx(2.0 + (0.5 + 1.0) + 8.0)
    assert usage_cost(ROWS, {"openai/a": PRICES["openai/a"], "openai/b": None}) is None
    assert usage_cost([], {}) == 0.0


def test_the_summary_gives_tokens_and_cost_per_role_in_total_and_per_accepted_pair():
    records = [{"accepted": True, "lm_usage": ROWS[:2]}, {"accepted": False, "lm_usage": ROWS[2:]},
               {"accepted": True, "lm_usage": []}]
    usage = usage_summary(records, PRICES)
    assert list(usage["roles"]) == ["generator", "solver", "judge"]  # the pipeline's order
    assert usage["roles"]["solver"] == {"models": ["openai/b"], "lm_calls": 8, "prompt_tokens": 500_000,
                                        "completion_tokens": 100_000, "cost_usd": pytest.approx(1.5)}
    assert usage["total"]["lm_calls"] == 11 and usage["total"]["cost_usd"] == pytest.approx(11.5)
    assert usage["per_accepted"] == {"lm_calls": 5.5, "tokens": 1_300_000.0, "cost_usd": pytest.approx(5.75)}
    assert usage["unpriced"] == [] and usage["prices"]["openai/a"]["input_per_1m"] == 2.0

    unknown = usage_summary(records, {"openai/a": PRICES["openai/a"], "openai/b": None})
    assert unknown["unpriced"] == ["openai/b"]
    assert unknown["roles"]["generator"]["cost_usd"] == pytest.approx(2.0)  # its model has a price
    assert unknown["roles"]["solver"]["cost_usd"] is None
    assert unknown["total"]["cost_usd"] is None and unknown["per_accepted"]["cost_usd"] is None
    metrics = usage_metrics(unknown)
    assert metrics["usage.generator.cost_usd"] == 2.0 and "usage.all.cost_usd" not in metrics
    assert metrics["usage.solver.prompt_tokens"] == 500_000 and metrics["usage.per_accepted.lm_calls"] == 5.5


# ------------------------------------------------------------------------------------------- tokens per role

class CannedEngine:
    """Answers `a` with 'ok' for 10 prompt and 3 completion tokens."""

    def complete(self, request):
        return Response(id=None, model=request.model, finish_reason="stop",
                        message=Message.assistant([TextPart("[[ ## a ## ]]\nok\n\n[[ ## completed ## ]]")]),
                        usage=Usage(input_tokens=10, output_tokens=3))


def test_calls_and_tokens_are_charged_to_the_role_even_on_threads_that_copy_the_context():
    lm = SageLM("test/canned-usage", engine=CannedEngine(), cache=False)  # the pipeline's LM class counts calls
    lms = RoleLMs({"solver": lm, "judge": lm})

    def call():
        dspy.Predict("q -> a")(q="x")

    with counting_usage() as spent:
        with lms.use("solver"):
            call()
            threads = [threading.Thread(target=contextvars.copy_context().run, args=(call,)) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        with lms.use("judge"):
            call()
        with dspy.context(lm=lm):
            call()  # outside any role
    assert spent["lm_usage"] == [
        {"role": "judge", "model": "test/canned-usage", "lm_calls": 1, "prompt_tokens": 10, "completion_tokens": 3,
         "parse_failures": 0},
        {"role": "other", "model": "test/canned-usage", "lm_calls": 1, "prompt_tokens": 10, "completion_tokens": 3,
         "parse_failures": 0},
        {"role": "solver", "model": "test/canned-usage", "lm_calls": 4, "prompt_tokens": 40, "completion_tokens": 12,
         "parse_failures": 0}]
    assert (spent["lm_calls"], spent["prompt_tokens"], spent["completion_tokens"]) == (6, 60, 18)


def test_the_tracker_survives_dspy_parallel_copying_it():
    tracker = RoleUsageTracker()
    assert copy.deepcopy(tracker) is tracker  # shared and locked, so no thread's usage is lost


def test_records_and_summary_count_tokens_per_role(tiny_passages, tmp_path):
    result = generate(GenerateConfig(seeds=3, k=2, rounds=1, out_dir=tmp_path / "run", index_root=tmp_path / "idx"),
                      passages=list(tiny_passages))
    for record in result.records:
        rows = record["lm_usage"]
        assert "generator" in {row["role"] for row in rows} and {row["role"] for row in rows} <= set(ROLES)
        assert sum(row["lm_calls"] for row in rows) == record["lm_calls"] > 0
        assert sum(row["prompt_tokens"] for row in rows) == record["prompt_tokens"] > 0
        assert sum(row["completion_tokens"] for row in rows) == record["completion_tokens"] > 0
    usage = result.summary["usage"]
    assert {"generator", "solver"} <= set(usage["roles"])
    assert usage["total"]["lm_calls"] == sum(r["lm_calls"] for r in result.records)
    assert usage["total"]["cost_usd"] == 0.0 and usage["unpriced"] == []  # the offline LM is free
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["usage"]["roles"]["solver"]["lm_calls"] == usage["roles"]["solver"]["lm_calls"]


# ------------------------------------------------------------------------------------------- the cost budget

def test_the_budget_stops_on_calls_or_cost_and_says_which():
    prices = {"m": Price(1.0, 0.0, "config")}
    budget = CallBudget(None, max_cost=2.0, prices=prices)
    seed = {"lm_calls": 3, "lm_usage": [{"role": "solver", "model": "m", "lm_calls": 3, "prompt_tokens": 1_500_000,
                                         "completion_tokens": 0}]}
    budget.charge(seed)
    assert budget.allows_more() and budget.stop_reason(1, 4) == ""
    budget.charge(seed)
    assert not budget.allows_more() and budget.spent_budget() == "cost"
    assert budget.stop_reason(2, 4) == "cost budget of $2 spent ($3.0000) after 2 of 4 seeds"
    assert budget.stop_reason(4, 4) == ""  # nothing was left undone
    calls = CallBudget(6, max_cost=100.0, prices=prices)
    calls.charge(seed)
    calls.charge(seed)
    assert calls.stop_reason(2, 4) == "LM-call budget of 6 spent after 2 of 4 seeds"


def test_a_cost_budget_stops_cleanly_and_the_same_command_with_more_continues(workdir):
    config = workdir / "sage.toml"
    config.write_text(OFFLINE_PRICED, encoding="utf-8")
    reference = invoke("generate", "--seeds", "6", "--out", "reference", "--config", config, *FAST)
    assert reference.exit_code == 0, reference.output
    stopped = invoke("generate", "--seeds", "6", "--out", "budget", "--config", config, "--max-cost", "0.1", *FAST)
    assert stopped.exit_code == 0, stopped.output
    assert "stopped: cost budget of $0.1 spent" in stopped.stdout
    summary = json.loads((workdir / "budget" / "summary.json").read_text())
    assert summary["stopped"].startswith("cost budget") and summary["usage"]["total"]["cost_usd"] >= 0.1
    saved = comparable(workdir / "budget" / "records.jsonl")
    assert 1 <= len(saved) < 6
    more = invoke("generate", "--seeds", "6", "--out", "budget", "--config", config, "--max-cost", "100", *FAST)
    assert more.exit_code == 0, more.output
    assert "stopped" not in more.stdout
    assert comparable(workdir / "budget" / "records.jsonl") == comparable(workdir / "reference" / "records.jsonl")
    assert "$" in more.stdout and "cost per accepted pair" in more.stdout


def test_a_resumed_run_counts_its_finished_seeds_against_the_cost_budget(workdir):
    config = workdir / "sage.toml"
    config.write_text(OFFLINE_PRICED, encoding="utf-8")
    first = invoke("generate", "--seeds", "4", "--out", "run", "--config", config, "--max-cost", "0.05", *FAST)
    assert first.exit_code == 0 and "stopped: cost budget" in first.stdout, first.output
    done = len((workdir / "run" / "records.jsonl").read_text().splitlines())
    again = invoke("generate", "--seeds", "4", "--out", "run", "--config", config, "--max-cost", "0.05", *FAST)
    assert again.exit_code == 0 and "stopped: cost budget" in again.stdout, again.output
    assert len((workdir / "run" / "records.jsonl").read_text().splitlines()) == done  # already spent: no seed ran


def test_a_cost_budget_with_an_unpriced_model_is_refused_up_front(workdir):
    result = invoke("generate", "--lm", "openai/my-server-model", "--max-cost", "1", "--out", "run", *FAST)
    assert_one_line_error(result, "no price is known for 'openai/my-server-model'")
    assert "[prices]" in result.stderr
    assert not (workdir / "run").exists()


def comparable(path):
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "kept", "drop_reason")}
            for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------- MLflow

def test_tracked_generate_logs_tokens_and_cost_per_role(workdir, isolated_mlflow):
    from mlflow import MlflowClient

    config = workdir / "sage.toml"
    config.write_text(OFFLINE_PRICED, encoding="utf-8")
    result = invoke("generate", "--seeds", "2", "--k", "2", "--rounds", "1", "--out", "run", "--config", config)
    assert result.exit_code == 0, result.output
    run_id = next(line.split()[2] for line in result.stdout.splitlines() if line.startswith("MLflow run "))
    metrics = MlflowClient(f"sqlite:///{workdir / 'artifacts' / 'mlflow.db'}").get_run(run_id).data.metrics
    assert json.loads((workdir / "run" / "mlflow.json").read_text()) == {"run_id": run_id}  # for `sage export`
    summary = json.loads((workdir / "run" / "summary.json").read_text())["usage"]
    assert summary["total"]["cost_usd"] > 0
    assert metrics["usage.all.cost_usd"] == pytest.approx(summary["total"]["cost_usd"], rel=1e-3)  # 4 digits shown
    assert metrics["usage.solver.prompt_tokens"] == summary["roles"]["solver"]["prompt_tokens"]
    assert "usage.generator.lm_calls" in metrics
