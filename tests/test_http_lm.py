"""A real wire: the offline LM served by `python -m sage_dspy.offline.server` (a subprocess on 127.0.0.1), called
through DSPy's real HTTP clients, native lm15 (`engine="auto"`) and LiteLLM (`engine="litellm"`).

What it pins down: a round trip over HTTP gives the in-process offline engine's reply; the whole pipeline over
HTTP gives the same records as in process; what DSPy 3.4.1 does today on 429 / 500 / timeout / garbage on each
engine path (measured against servers that always fail one way); that a run under a 20% fault rate still
completes; and that no API key reaches the server's output or any file the run writes.
"""

import importlib.metadata
import json
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import dspy
import dspy.clients.execution as dspy_execution
import pytest
from typer.testing import CliRunner

from sage_dspy.method.calibration import JUDGE_CALIBRATION
from sage_dspy.lm import roles as role_lms
from sage_dspy.cli.app import app
from sage_dspy.search.corpus import load_corpus
from sage_dspy.lm.inflight import SageLM
from sage_dspy.lm.roles import DEFAULT_TEMPERATURES, ROLES, build_lm, offline_lm
from sage_dspy.offline import http as offline_http
from sage_dspy.offline import server as offline_server
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.folder import failed_at_service
from sage_dspy.runs.generate import generate
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.signatures import JudgeAnswer, ReviseTooEasy
from sage_dspy.method.solver import Solver
from server_fixture import in_process_server, offline_servers

MODEL = "openai/sage-offline"
TEST_KEY = "sk-test-not-a-secret"
CANARY = "sk-canary-3f9c2a7e-must-never-be-written"
ENGINES = ("auto", "litellm")
SEEDS = 3
# Differ by construction between the offline engine and an HTTP LM: the model id per role, wall time, tokens.
VOLATILE = {"lms", "seconds", "prompt_tokens", "completion_tokens", "lm_usage"}
FAULT_KINDS = ("429", "500", "timeout", "garbage", "nomarkers")
CLIENT_TIMEOUT_S = 0.3  # the client's read timeout for fault tests; 'timeout' faults hang longer than this
HANG_S = "1.0"


# ------------------------------------------------------------------------------------------- fixtures

def api_base_of(server: offline_http.OfflineServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """Subprocesses: one clean server, one failing 20% of the time (mixed kinds). Started together (their imports
    overlap) and terminated at the end of the session, failed or not."""
    mixed = ["--fault-rate", "0.2", "--faults", "429,500,timeout,garbage", "--fault-seed", "3",
             "--retry-after", "0", "--hang", "0.2", "--log"]
    with offline_servers(tmp_path_factory.mktemp("servers"), ["--log"], mixed) as (clean, faulty):
        yield {"clean": clean, "faulty": faulty}


@pytest.fixture(scope="session")
def kind_servers():
    """In process: one server per fault kind, failing every request that way."""
    with ExitStack() as stack:
        yield {kind: stack.enter_context(in_process_server(offline_http.ServerConfig(
            fault_rate=1.0, faults=(kind,), hang=float(HANG_S), retry_after=0.0, idle_exit=120)))
            for kind in FAULT_KINDS}


@pytest.fixture(scope="session")
def clean(servers):
    return servers["clean"]


@pytest.fixture(scope="session")
def index_root(tmp_path_factory):
    """One bm25s index of the bundled corpus for every run here."""
    return tmp_path_factory.mktemp("indexes")


@pytest.fixture(scope="session")
def offline_records(tmp_path_factory, index_root):
    """The reference: the pipeline with the in-process offline LM on the bundled corpus."""
    out = tmp_path_factory.mktemp("offline-run")
    return generate(GenerateConfig(seeds=SEEDS, out_dir=out, index_root=index_root)).records


def http_lm(api_base: str, engine: str, role: str = "generator", **settings) -> dspy.LM:
    """An LM over the wire with the offline LM's own settings (seed=0, so rollout k sends seed k) and the
    role's temperature, as build_lm gives it: the pipeline's LM class, which counts the calls."""
    options = {"temperature": DEFAULT_TEMPERATURES[role], "seed": 0, **settings}
    return SageLM(MODEL, api_base=api_base, api_key=TEST_KEY, cache=False, engine=engine, **options)


def use_http_lms(monkeypatch, factory) -> None:
    """generate() builds its LMs from model strings with no api_base (neither it nor the CLI takes one): swap
    in LMs over the wire."""
    monkeypatch.setattr(role_lms.RoleLMs, "from_specs",
                        classmethod(lambda cls, specs, **options: cls({role: factory(role) for role in specs})))


def comparable(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in VOLATILE}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# ------------------------------------------------------------------------------------------- the server

def test_server_routes_and_bad_requests(clean):
    assert clean.get("/health") == {"status": "ok"}
    assert [m["id"] for m in clean.get("/v1/models")["data"]] == ["offline/sage-rules-v1"]
    assert {"requests", "served", "faults", "in_flight_max", "clients"} <= set(clean.stats())

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    status, reply = post(clean.api_base + "/chat/completions", json.dumps(body).encode(),
                         {"Authorization": f"Bearer {CANARY}"})
    assert status == 200 and CANARY.encode() not in reply
    completion = json.loads(reply)
    assert completion["choices"][0]["message"]["content"] == "[[ ## completed ## ]]"  # no fields asked for
    assert completion["usage"]["total_tokens"] == completion["usage"]["prompt_tokens"] + \
        completion["usage"]["completion_tokens"]

    assert post(clean.api_base + "/chat/completions", b"{not json")[0] == 400
    assert post(clean.api_base + "/chat/completions", b'{"messages": 3}')[0] == 400
    assert post(clean.api_base + "/chat/completions", json.dumps({**body, "stream": True}).encode())[0] == 400
    assert post(clean.api_base + "/embeddings", json.dumps(body).encode())[0] == 404
    with pytest.raises(urllib.error.HTTPError, match="404"):
        clean.get("/v1/nothing")


def test_latency_budget_and_idle_exit_in_process():
    """The knobs that bound a load test: seeded latency, concurrency counted, a request budget, idle exit."""
    config = offline_http.ServerConfig(latency=(0.05, 0.08), max_requests=4, idle_exit=0.5, fault_seed=1)
    with in_process_server(config) as server:
        url = api_base_of(server) + "/chat/completions"
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        started = time.perf_counter()
        workers = [threading.Thread(target=post, args=(url, body)) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert 0.05 <= time.perf_counter() - started < 2
        assert post(url, body)[0] == 200  # the 4th of 4
        assert post(url, body)[0] == 503  # over budget: refused, and the server shuts itself down
        assert server.stopping.wait(5) and server.stop_reason == "max-requests"
        stats = server.stats
        assert (stats.served, stats.refused) == (4, 1) and stats.in_flight_max >= 2

    started = time.perf_counter()
    assert offline_http.serve(offline_http.ServerConfig(idle_exit=0.3)).stop_reason == "idle"
    assert time.perf_counter() - started < 5


def test_fault_draws_depend_on_the_request_not_on_arrival_order():
    config = offline_http.ServerConfig(fault_rate=0.5, faults=offline_http.FAULT_KINDS, fault_seed=7)
    bodies = [{"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(40)]
    forward, backward = offline_http.OfflineServer(config), offline_http.OfflineServer(config)
    try:
        drawn = [forward._draw_fault(body) for body in bodies]
        assert [backward._draw_fault(body) for body in reversed(bodies)][::-1] == drawn
        assert 5 < sum(kind is not None for kind in drawn) < 35
        failed = bodies[drawn.index(next(kind for kind in drawn if kind))]
        streak = [drawn[bodies.index(failed)]]
        while streak[-1] is not None and len(streak) < 30:  # a retry draws afresh, until one gets through ...
            streak.append(forward._draw_fault(failed))
        assert streak[-1] is None
        assert [forward._draw_fault(failed) for _ in streak] == streak  # ... then it meets the same streak again
        assert [forward._draw_fault(body, "other-client") for body in bodies] != drawn  # clients draw apart
    finally:
        forward.server_close()
        backward.server_close()


def test_server_knob_validation():
    assert offline_server.parse_latency("0.01") == (0.01, 0.01)
    assert offline_server.parse_latency("0.005-0.02") == (0.005, 0.02)
    with pytest.raises(SystemExit):
        offline_server.parse_args(["--latency", "0.2-0.1"])
    with pytest.raises(SystemExit):
        offline_server.parse_args(["--faults", "429,teapot"])
    with pytest.raises(SystemExit):
        offline_server.parse_args(["--fault-rate", "1.5"])
    config = offline_server.parse_args(["--fault-rate", "0.2", "--faults", "timeout,garbage", "--hang", "2"])
    assert (config.fault_rate, config.faults, config.hang) == (0.2, ("timeout", "garbage"), 2.0)


# ------------------------------------------------------------------------------------------- (a) round trip

@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.JSONAdapter()], ids=["chat", "json"])
@pytest.mark.parametrize("engine", ENGINES)
def test_predict_over_http_equals_the_in_process_engine(clean, engine, adapter):
    calls = [
        (JudgeAnswer, {"question": "Who designed Harbor Bridge?", "gold_answer": "Ada Marlowe",
                       "predicted_answer": "Marlowe, Ada"}),
        (ReviseTooEasy, {"question": "Which date comes right after \"founded in\"?", "answer": "1851",
                         "answering_steps": ["Search Corvel Institute (id: p-corvel)"], "target_searches": 3,
                         "why_too_easy": "Too easy: one search.", "generator_trajectory": "search 1",
                         "solver_trajectories": "attempt 1", "evidence": "Corvel Institute (id: p-corvel)\n"
                         "Corvel Institute was founded in 1851. Its first rector was Tobias Wren."}),
    ]
    before = clean.stats()
    lm, local = http_lm(clean.api_base, engine), offline_lm()
    for signature, inputs in calls:
        with dspy.context(lm=lm, adapter=adapter):
            over_http = dspy.Predict(signature)(**inputs)
        with dspy.context(lm=local, adapter=adapter):
            in_process = dspy.Predict(signature)(**inputs)
        assert over_http.toDict() == in_process.toDict()
        usage = ("prompt_tokens", "completion_tokens")
        assert [lm.history[-1]["usage"][k] for k in usage] == [local.history[-1]["usage"][k] for k in usage]
    after = clean.stats()
    clients = {name: after["clients"][name] - before["clients"].get(name, 0) for name in after["clients"]}
    sent_by = {name for name, count in clients.items() if count}
    # native lm15 sends its own User-Agent; the LiteLLM path sends DSPy's (through the OpenAI SDK)
    assert sent_by == ({"lm15/stdlib"} if engine == "auto" else {f"DSPy/{dspy.__version__}"}), clients
    assert after["served"] - before["served"] == len(calls)  # one call each: no adapter fallback, no retry


# ------------------------------------------------------------------------------------------- (b) the pipeline

@pytest.mark.parametrize("engine", ENGINES)
def test_pipeline_over_http_gives_the_offline_records(clean, engine, offline_records, index_root, tmp_path,
                                                      monkeypatch):
    use_http_lms(monkeypatch, lambda role: http_lm(clean.api_base, engine, role))
    before = clean.stats()
    result = generate(GenerateConfig(seeds=SEEDS, lms={role: MODEL for role in ROLES}, out_dir=tmp_path,
                                     index_root=index_root))
    served = clean.stats()["served"] - before["served"]

    assert [r["lms"] for r in result.records] == [{role: MODEL for role in ROLES}] * SEEDS
    assert [r["error"] for r in result.records] == [""] * SEEDS
    assert [comparable(r) for r in result.records] == [comparable(r) for r in offline_records]
    assert result.records[0]["rounds"], "the comparison covered whole rounds"
    # every call went over the wire once (plus check_lms's probe and the judge's calibration items): no retry,
    # no adapter fallback
    assert served == sum(r["lm_calls"] for r in result.records) + 1 + len(JUDGE_CALIBRATION)
    assert read_jsonl(result.records_path) == result.records


def run_cli_over_env(server, out: Path, *extra: str):
    """`sage generate --lm openai/sage-offline` pointed at the server the only way the CLI allows today:
    OPENAI_API_BASE, which also makes DSPy's engine="auto" pick LiteLLM."""
    env = {"COLUMNS": "200", "OPENAI_API_KEY": CANARY, "OPENAI_API_BASE": server.api_base}
    return CliRunner().invoke(app, ["generate", "--corpus", "bundled", "--seeds", str(SEEDS), "--lm", MODEL,
                                    "--out", str(out), *extra], env=env)


def test_cli_over_http_writes_no_key_anywhere(clean, workdir, isolated_mlflow):
    """(d): the key is on the wire (the server counts Authorization headers) but in no output: not the CLI's,
    not the server's, not records, summary, config, the MLflow store or its artifacts."""
    before = clean.stats()
    result = run_cli_over_env(clean, workdir / "artifacts" / "runs" / "http")
    after = clean.stats()
    assert result.exit_code == 0, result.output
    calls = after["completions"] - before["completions"]
    assert calls > SEEDS and after["authorized"] - before["authorized"] == calls
    assert after["clients"].get(f"DSPy/{dspy.__version__}", 0) - before["clients"].get(
        f"DSPy/{dspy.__version__}", 0) == calls  # OPENAI_API_BASE sent the CLI down the LiteLLM path

    records = read_jsonl(workdir / "artifacts" / "runs" / "http" / "records.jsonl")
    assert [r["error"] for r in records] == [""] * SEEDS
    assert (workdir / "artifacts" / "mlflow.db").exists()
    written = [path for path in workdir.rglob("*") if path.is_file()]
    assert len(written) > 5
    leaks = [str(path) for path in written if CANARY.encode() in path.read_bytes()]
    assert leaks == []
    assert CANARY not in result.output
    assert "no price known for openai/sage-offline: add one under [prices]" in " ".join(result.output.split())
    assert CANARY not in clean.output() and "Authorization" not in clean.output()
    assert '"path": "/v1/chat/completions"' in clean.output()  # the log was on, and said nothing of keys


def run_cli(server, out: Path, *extra: str):
    """`sage generate` over the wire the way a user points it at a server: --api-base (native lm15 path), with
    --lm-seed 0 so attempt k sends seed k like the offline LM's rollouts."""
    env = {"COLUMNS": "200", "OPENAI_API_KEY": CANARY}
    return CliRunner().invoke(app, ["generate", "--corpus", "bundled", "--seeds", str(SEEDS), "--lm", MODEL,
                                    "--api-base", server.api_base, "--lm-seed", "0", "--out", str(out), *extra],
                              env=env)


def test_cli_over_http_gives_the_offline_records(clean, workdir, offline_records):
    before = clean.stats()
    result = run_cli(clean, workdir / "run", "--no-track")
    assert clean.stats()["clients"].get("lm15/stdlib", 0) > before["clients"].get("lm15/stdlib", 0)  # native
    assert result.exit_code == 0, result.output
    records = read_jsonl(workdir / "run" / "records.jsonl")
    assert [comparable(r) for r in records] == [comparable(r) for r in offline_records]


# ------------------------------------------------------------------------------------------- (c) faults

# What the product relies on, whatever the release: every fault ends in one of DSPy's LM error classes (the kind
# a record stores), after at most 1 + num_retries requests (DSPy owns retries: LM(num_retries=3); lm15 and
# LiteLLM are called with no retries of their own), and the error never carries the API key.
RELIED_ON = {
    "429": {"LMRateLimitError"},
    "500": {"LMServerError"},
    "timeout": {"LMTimeoutError", "LMTransportError"},
    "garbage": {"LMProviderError", "LMServerError"},  # a 200 that is not JSON: final, or retried as a server error
    "nomarkers": {"AdapterParseError"},  # re-asked once, by the JSONAdapter fallback
}
NUM_RETRIES = 3  # DSPy's default, which build_lm keeps

# The exact figures, which hold for the locked releases only: (exception, requests the server saw, backoffs
# asked for). DSPy sleeps 2**attempt seconds (1, 2, 4) or the error's retry_after; the fault servers send
# `Retry-After: 0` with 429 and 500. litellm 1.106.2 lost that header (its 429/500 backoffs were 1, 2, 4);
# 1.110.2 passes it on, so both paths now retry at once. `make test-latest` shows when a release moves them.
RECORDED_WITH = {"dspy": "3.4.1", "litellm": "1.110.2"}
MEASURED = {
    ("auto", "429"): ("LMRateLimitError", 4, [0, 0, 0]),
    ("auto", "500"): ("LMServerError", 4, [0, 0, 0]),
    ("auto", "timeout"): ("LMTransportError", 4, [1, 2, 4]),
    ("auto", "garbage"): ("LMProviderError", 1, []),
    ("auto", "nomarkers"): ("AdapterParseError", 2, []),
    ("litellm", "429"): ("LMRateLimitError", 4, [0, 0, 0]),
    ("litellm", "500"): ("LMServerError", 4, [0, 0, 0]),
    ("litellm", "timeout"): ("LMTimeoutError", 4, [1, 2, 4]),
    ("litellm", "garbage"): ("LMServerError", 4, [1, 2, 4]),
    ("litellm", "nomarkers"): ("AdapterParseError", 2, []),
}


@pytest.fixture
def backoffs(monkeypatch):
    """DSPy's own backoff decisions, recorded and not slept (test_backoff_really_sleeps shows they are)."""
    asked = []
    real = dspy_execution._delay

    def record(error, attempt):
        asked.append(real(error, attempt))
        return 0

    monkeypatch.setattr(dspy_execution, "_delay", record)
    return asked


def fail_one_call(server, engine: str, **settings) -> tuple[BaseException, int]:
    """One judge call against a server failing every request one way: the exception and the requests made.
    DSPy's behaviour alone unless `settings` say otherwise: SageLM's own retries (reply_retries, parse_retries)
    are off."""
    settings = {"reply_retries": 0, "parse_retries": 0, **settings}
    lm = http_lm(api_base_of(server), engine, timeout=CLIENT_TIMEOUT_S, **settings)
    before = server.stats.completions
    with role_lms.RoleLMs({"judge": lm}).use("judge"), pytest.raises(Exception) as raised:
        dspy.Predict(JudgeAnswer)(question="Who?", gold_answer="Ada", predicted_answer="Ada Marlowe")
    return raised.value, server.stats.completions - before


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("engine", ENGINES)
def test_each_fault_ends_in_a_known_kind_after_bounded_retries(kind_servers, engine, kind, backoffs):
    error, requests = fail_one_call(kind_servers[kind], engine)
    assert type(error).__name__ in RELIED_ON[kind]
    assert 1 <= requests <= 1 + NUM_RETRIES and len(backoffs) <= NUM_RETRIES
    assert all(0 <= delay <= 2 ** NUM_RETRIES for delay in backoffs)
    assert TEST_KEY not in str(error) and TEST_KEY not in repr(error)


@pytest.mark.skipif({name: importlib.metadata.version(name) for name in RECORDED_WITH} != RECORDED_WITH,
                    reason=f"exact figures recorded with {RECORDED_WITH}; installed: "
                           f"{ {name: importlib.metadata.version(name) for name in RECORDED_WITH} }")
@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("engine", ENGINES)
def test_exact_upstream_figures_for_the_locked_releases(kind_servers, engine, kind, backoffs):
    error, requests = fail_one_call(kind_servers[kind], engine)
    assert (type(error).__name__, requests, backoffs) == MEASURED[engine, kind]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_malformed_reply_is_retried_by_the_pipelines_lm_a_bounded_number_of_times(kind_servers, engine, backoffs):
    """Defect 8: on the native engine a 200 that is not JSON is a final LMProviderError to DSPy; SageLM asks
    again `reply_retries` times. LiteLLM already turns it into a 5xx that DSPy retries: nothing is added."""
    error, requests = fail_one_call(kind_servers["garbage"], engine, reply_retries=2)
    if engine == "auto":
        assert (type(error).__name__, requests) == ("LMProviderError", 1 + 2)
    else:
        assert (type(error).__name__, requests) == ("LMServerError", 1 + NUM_RETRIES)
    assert TEST_KEY not in str(error)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_unparseable_reply_is_asked_again_a_bounded_number_of_times(kind_servers, engine):
    """Defect 9: each try is ChatAdapter's call and DSPy's JSONAdapter fallback; `parse_retries` more tries."""
    error, requests = fail_one_call(kind_servers["nomarkers"], engine, parse_retries=2)
    assert type(error).__name__ == "AdapterParseError" and requests == 2 * (1 + 2)
    assert offline_http.NO_MARKERS_TEXT in error.lm_response


def test_a_seed_killed_by_unparseable_replies_keeps_the_reply_and_its_role(kind_servers, index_root, tmp_path,
                                                                          monkeypatch):
    server = kind_servers["nomarkers"]
    use_http_lms(monkeypatch, lambda role: http_lm(api_base_of(server), "auto", role, timeout=5.0))
    result = generate(GenerateConfig(seeds=1, lms={role: MODEL for role in ROLES}, out_dir=tmp_path,
                                     index_root=index_root), allow_weak_judge=True)  # its judge cannot parse either
    record = read_jsonl(result.records_path)[0]
    assert (record["error_kind"], record["failed_in"]) == ("AdapterParseError", "generator")
    assert offline_http.NO_MARKERS_TEXT in record["raw_reply"] and len(record["raw_reply"]) <= 2000
    assert result.summary["failures"]["parse_failures"] == {"generator": 3}
    assert TEST_KEY not in result.records_path.read_text(encoding="utf-8")


def test_backoff_really_sleeps(kind_servers):
    """Unpatched: a dropped connection carries no Retry-After, so DSPy sleeps its 1 s before its one retry."""
    server = kind_servers["timeout"]
    lm = http_lm(api_base_of(server), "auto", num_retries=1, timeout=CLIENT_TIMEOUT_S)
    before, started = server.stats.completions, time.perf_counter()
    with dspy.context(lm=lm), pytest.raises(dspy.utils.exceptions.LMTransportError):
        dspy.Predict(JudgeAnswer)(question="Who?", gold_answer="Ada", predicted_answer="Ada")
    assert server.stats.completions - before == 2
    assert 1.0 <= time.perf_counter() - started < 1.0 + 2 * CLIENT_TIMEOUT_S + 1.5


def surfaced_errors(record: dict) -> list[str]:
    """The seed's error and every attempt's error (an LM failure in a solver attempt, or its judge, costs that
    attempt only)."""
    errors = [record["error"]] + [attempt["error"] for past in record["rounds"] for attempt in past["attempts"]]
    return [error for error in errors if error]


def surfaced_kinds(record: dict) -> list[str]:
    """The stored kinds of what surfaced_errors lists."""
    entries = [record] + [attempt for past in record["rounds"] for attempt in past["attempts"]]
    return [entry["error_kind"] for entry in entries if entry["error"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_pipeline_completes_under_a_20_percent_fault_rate(servers, engine, offline_records, index_root, tmp_path,
                                                          monkeypatch, backoffs):
    """Here a 'timeout' fault drops the connection after 0.2 s (well inside the client's timeout, so that a
    slow machine cannot turn a good reply into a timeout): the client sees a closed connection."""
    faulty = servers["faulty"]
    use_http_lms(monkeypatch, lambda role: http_lm(faulty.api_base, engine, role, timeout=5.0))
    before = faulty.stats()
    result = generate(GenerateConfig(seeds=SEEDS, lms={role: MODEL for role in ROLES}, out_dir=tmp_path,
                                     index_root=index_root))
    after = faulty.stats()
    injected = {kind: after["faults"][kind] - before["faults"][kind] for kind in after["faults"]}

    assert len(result.records) == SEEDS and len(read_jsonl(result.records_path)) == SEEDS
    assert sum(injected.values()) >= 5 and backoffs, injected
    errors = [error for record in result.records for error in surfaced_errors(record)]
    kinds = {kind for record in result.records for kind in surfaced_kinds(record)}
    assert kinds <= {"LMRateLimitError", "LMServerError", "LMTimeoutError", "LMTransportError",
                     "LMProviderError", "ServiceUnavailable"}, errors
    # Every fault is retried (a 200 that is not JSON too: by SageLM on the native engine, as a 5xx by LiteLLM):
    # only a run of failures in a row of one request surfaces, three (native garbage) or four (the rest).
    assert len(errors) <= sum(injected.values()) // 3
    for record, reference in zip(result.records, offline_records):  # a seed whose faults were all retried away
        if not surfaced_errors(record):                                # is exactly the offline seed
            assert comparable(record) | {"lm_calls": 0} == comparable(reference) | {"lm_calls": 0}
    assert CANARY not in faulty.output() and TEST_KEY not in faulty.output()
    print(f"\n[{engine}] faults {injected}, requests {after['completions'] - before['completions']}, "
          f"backoffs {len(backoffs)}, surfaced {sorted(e[:40] for e in errors)}, "
          f"clean seeds {sum(not surfaced_errors(r) for r in result.records)}/{SEEDS}, "
          f"failed seeds {sum(bool(r['error']) for r in result.records)}/{SEEDS}")


MAX_PASSES = 6


@pytest.mark.parametrize("engine", ENGINES)
def test_re_runs_under_20_percent_faults_converge_to_the_fault_free_records(servers, engine, offline_records,
                                                                          index_root, tmp_path, monkeypatch,
                                                                          backoffs):
    """Every fault kind at 20%: the same command again (a resume) until no seed or attempt is left failed at the
    service, within MAX_PASSES; then every record is the fault-free (offline) one."""
    use_http_lms(monkeypatch, lambda role: http_lm(servers["faulty"].api_base, engine, role, timeout=5.0))
    config = GenerateConfig(seeds=SEEDS, lms={role: MODEL for role in ROLES}, out_dir=tmp_path, index_root=index_root)
    for passes in range(1, MAX_PASSES + 1):
        result = generate(config)
        left = [record["seed_id"] for record in result.records if failed_at_service(record)]
        if not left:
            break
    assert not left, f"seeds {left} still failed at the service after {MAX_PASSES} passes"
    assert [comparable(r) | {"lm_calls": 0} for r in result.records] == \
        [comparable(r) | {"lm_calls": 0} for r in offline_records]
    print(f"\n[{engine}] converged in {passes} pass(es), {len(backoffs)} backoffs")


def test_k_attempts_are_k_distinct_samples_even_with_the_cache_on(clean, offline_records, index_root, monkeypatch):
    """A real LM keeps DSPy's cache on. Each attempt is its own rollout (rollout_id k, seed + k), so the K
    attempts reach the server as K samples and differ (the offline LM samples a careful or a hurried agent by
    seed); asking again is served from the cache, same attempts, no request."""
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    question = offline_records[0]["rounds"][0]["question"]
    solver = Solver(SearchTool(SearchIndex.open(load_corpus("bundled"), root=index_root)))
    lm = build_lm(MODEL, "solver", api_base=clean.api_base, seed=0)
    assert lm.cache
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    try:
        with dspy.context(lm=lm):
            before = clean.stats()["completions"]
            first = solver.attempt(question, k=4)
            sent = clean.stats()["completions"] - before
            again = solver.attempt(question, k=4)
        resent = clean.stats()["completions"] - before - sent
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)  # the suite's setting
    assert sent == sum(len(a.steps) + 1 for a in first)  # every step and every extract of every attempt
    assert resent == 0 and again == first  # the second time, all from the cache
    trajectories = {tuple(step.query for step in a.steps) for a in first}
    assert len(trajectories) >= 2, trajectories
