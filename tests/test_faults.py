"""Faults are never verdicts (issue 21, items 1-3; issue 23's counted searches): a dead retriever is refused
before any LM call, a backend that dies mid-run trips the breaker, a void attempt is neither a search nor a
wrong answer, and a plain re-run repairs exactly what faults touched. Real loopback servers only."""

import json

import pytest

from cli_helpers import assert_one_line_error, invoke
from retriever_fixture import StandIn, stand_in_server
from sage_dspy import breaker
from sage_dspy.breaker import Breaker, BreakerLimits, EXIT_CODE
from sage_dspy.method.trajectory import Step, is_retrieval, search_count
from sage_dspy.offline.http import ServerConfig
from sage_dspy.runs.folder import failed_at_service
from sage_dspy.runs.preflight import RetrieverUnreachableError
from sage_dspy.search import remote
from server_fixture import in_process_server

GENERATE = ("generate", "--no-track", "--seeds", "8", "--targets", "2-3", "--k", "2", "--rounds", "1")
TIMING = ("seconds",)


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(remote, "BACKOFF_S", 0.0)


def records_of(folder) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (folder / "records.jsonl").read_text(encoding="utf-8").splitlines()]


def counted_steps_are_retrievals(records: list[dict]) -> bool:
    """Every attempt's searches are its successful retrievals, and no void attempt counts one."""
    for record in records:
        for past in record["rounds"]:
            for attempt in past["attempts"]:
                steps = [Step(**step) for step in attempt["steps"]]
                if attempt["searches"] != search_count(steps) or (attempt.get("void") and attempt["searches"]):
                    return False
    return True


# ------------------------------------------------------------------------------ the breaker alone

def test_the_breaker_trips_on_failures_in_a_row_and_on_a_rate_and_names_the_backend():
    in_a_row = Breaker(BreakerLimits(in_a_row=3, rate=0.0, window=0))
    for ok in (False, False, True, False, False):
        in_a_row.observe("the retriever", ok)
    assert not in_a_row.tripped
    in_a_row.observe("the retriever", False)
    assert in_a_row.reason == "the retriever failed 3 calls in a row"
    rate = Breaker(BreakerLimits(in_a_row=0, rate=0.5, window=4))
    for ok in (True, False, True):
        rate.observe("the solver LM 'x'", ok)
    assert not rate.tripped  # the window is not full yet
    rate.observe("the solver LM 'x'", False)
    assert rate.reason == "the solver LM 'x' failed 2 of its last 4 calls"
    line = rate.stop_line("3 of 8 seeds done")
    assert "the solver LM 'x' 2/4 failed" in line and "run the same command again" in line
    off = Breaker(BreakerLimits(in_a_row=0, rate=0.0))
    for _ in range(100):
        off.observe("the retriever", False)
    assert not off.tripped


def test_once_tripped_no_call_is_made():
    tripped = Breaker(BreakerLimits(in_a_row=1))
    tripped.observe("the retriever", False)
    with breaker.watching(tripped), pytest.raises(breaker.BreakerOpen):
        breaker.check()
    breaker.check()  # outside a run: nothing watches


# ------------------------------------------------------------------------------ issue 23: counted searches

def test_a_reply_from_dspys_cache_is_no_sign_the_server_is_up(monkeypatch):
    """On a resume against a dead server, the voided seeds replay their cached calls first: counted as
    successes, they would reset the in-a-row count before every failure and the breaker would never trip."""
    import dspy

    from sage_dspy.lm.roles import build_lm
    from sage_dspy.lm.usage import counting_usage

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    try:
        with in_process_server(ServerConfig(idle_exit=60)) as server:
            lm = build_lm("openai/sage-offline", "judge", api_base=f"http://127.0.0.1:{server.server_address[1]}/v1")
            with breaker.watching(Breaker()) as watched, counting_usage():
                lm("Reply with the word ok.")
                lm("Reply with the word ok.")  # the same request: DSPy's cache answers it
            assert sum(watched.calls.values()) == 1 and server.stats.completions == 1
            with breaker.watching(Breaker()) as outside:  # no usage tracker (a compile's threads): as before
                lm("Reply with the word ok.")
            assert sum(outside.calls.values()) == 1
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)


def test_only_successful_retrievals_count_as_searches():
    found = Step("t", "search", "Harbor Bridge", "[1] Harbor Bridge (id: p1)\nHarbor Bridge is ...")
    nothing = Step("t", "search", "zzz", "No passages matched this query. Try other keywords.")
    empty = Step("t", "search", "  ", "No passages matched this query. Try other keywords.")
    tool_error = Step("t", "search", "", "Execution error in search: Arg query is required")
    failed = Step("t", "search", "q", "Search failed (malformed reply): the retriever's reply to 'q' is not JSON. ")
    finish = Step("t", "finish", "", "Completed.")
    assert [is_retrieval(s) for s in (found, nothing, empty, tool_error, failed, finish)] == \
        [True, True, False, False, False, False]
    assert search_count([found, empty, tool_error, failed, nothing, finish]) == 2


# ------------------------------------------------------------------------------ a dead retriever, before any call

def test_a_closed_port_retriever_is_one_line_and_no_lm_call_for_every_command(tiny_corpus_file, workdir,
                                                                              monkeypatch, fast_retries):
    from test_adversarial import dead_retriever

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    questions = workdir / "q.jsonl"
    questions.write_text(json.dumps({"question": "Who designed Harbor Bridge?", "answer": "Ada"}) + "\n")
    with in_process_server(ServerConfig()) as server:
        lm = ("--lm", "openai/sage-offline", "--api-base", f"http://127.0.0.1:{server.server_address[1]}/v1")
        for args in ([*GENERATE, "--corpus", tiny_corpus_file, *lm],
                     ["evaluate", "--no-track", "--seeds", "2", "--corpus", tiny_corpus_file, *lm],
                     ["solve", "--questions", questions, "--corpus", tiny_corpus_file, *lm],
                     ["compile", "--no-track", "--corpus", tiny_corpus_file, "--train-size", "2", "--val-size", "1",
                      *lm]):
            assert_one_line_error(invoke(*args, "--retriever", dead_retriever()), "did not answer a test query")
        assert server.stats.completions == 0
    assert not (workdir / "artifacts" / "programs").exists() or not any((workdir / "artifacts" / "programs").iterdir())


# ------------------------------------------------------------------------------ a retriever dying mid-run

@pytest.mark.parametrize("workers", [1, 4])
def test_a_retriever_killed_mid_run_trips_the_breaker_and_a_plain_rerun_completes_it(workers, tiny_passages,
                                                                                    tiny_corpus_file, workdir,
                                                                                    fast_retries):
    healthy = StandIn(tiny_passages)
    with stand_in_server(healthy) as url:
        assert invoke(*GENERATE, "--corpus", tiny_corpus_file, "--out", workdir / "whole",
                      "--retriever", url).exit_code == 0
    # Dead after the preflight and a few searches. A seed ends at its first void search, and the tiny corpus
    # has 8 passages, so the breaker is set to trip at 2 in a row (the default is 5).
    dying = StandIn(tiny_passages, down_after=len(healthy.requests) // 4)
    with stand_in_server(dying) as url:
        command = (*GENERATE, "--corpus", tiny_corpus_file, "--out", workdir / "cut", "--retriever", url,
                   "--breaker-in-a-row", "2", "--workers", workers)
        stopped = invoke(*command)
        assert stopped.exit_code == EXIT_CODE, stopped.output
        [line] = [line for line in stopped.stderr.splitlines() if line.strip()]
        assert line.startswith("error: stopped: the retriever failed 2 calls in a row") and "127.0.0.1" not in line
        # the bound: 2 void searches (plus, with N workers, up to N - 1 searches already under way when it
        # tripped), each tried 1 + RETRIES times, and no search started after the trip
        assert 2 * (1 + remote.RETRIES) <= dying.dead_requests <= (2 + workers - 1) * (1 + remote.RETRIES)
        partial = records_of(workdir / "cut")
        assert any(failed_at_service(r) for r in partial) and counted_steps_are_retrievals(partial)
        dying.restart()
        assert invoke(*command).exit_code == 0
    assert records_of(workdir / "cut") == records_of(workdir / "whole")


def test_with_30_percent_500s_reruns_reach_the_fault_free_records_and_no_void_search_counts(tiny_passages,
                                                                                           tmp_path, fast_retries):
    from sage_dspy.runs.config import GenerateConfig
    from sage_dspy.runs.generate import generate

    voided = []  # what the records of the passes said was void, and why

    def run(stand_in: StandIn, out: str, passes: int):
        with stand_in_server(stand_in) as url:
            config = GenerateConfig(seeds=6, min_target=2, max_target=3, k=2, rounds=1, random_seed=3,
                                    out_dir=tmp_path / out, index_root=tmp_path / "indexes", retriever=url)
            for done in range(1, passes + 1):
                try:
                    result = generate(config, passages=list(tiny_passages))
                except (breaker.BackendDown, RetrieverUnreachableError) as error:  # the same command again
                    assert "retriever" in str(error)
                    continue
                seen = records_of(tmp_path / out)
                assert counted_steps_are_retrievals(seen)
                voided.extend(void_reasons(seen))
                if not any(failed_at_service(r) for r in result.records):
                    return done
        raise AssertionError(f"still void seeds after {passes} passes")

    run(StandIn(tiny_passages), "clean", 1)
    faulty = StandIn(tiny_passages, fault_rate=0.3, fault_seed=7)
    passes = run(faulty, "faulty", 8)
    assert records_of(tmp_path / "faulty") == records_of(tmp_path / "clean")
    assert passes > 1  # the faults did void some seeds, which the re-runs redid
    assert voided and set(voided) <= {("generator", "RetrieverUnavailable"), ("round", "RetrieverUnavailable")}


def void_reasons(records: list[dict]) -> list[tuple[str, str]]:
    """(where, kind) per void seed: its generator's search, or a round of no verdict holding a void attempt."""
    reasons = []
    for record in records:
        if record["error_kind"] == "RetrieverUnavailable":
            reasons.append(("generator", record["failed_in"] and "RetrieverUnavailable"))
        elif record["error_kind"] == "ServiceUnavailable":
            last = record["rounds"][-1]
            assert last["verdict"] == "void" and last["searches"] == -1
            [void] = [a for a in last["attempts"] if a["void"]]
            assert void["searches"] == 0 and not void["correct"]
            reasons.append(("round", void["error_kind"]))
    return reasons


# ------------------------------------------------------------------------------ an LM endpoint dying mid-run

def test_an_lm_endpoint_killed_mid_run_trips_the_breaker(tiny_corpus_file, workdir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    # The server answers 25 completions (the preflight's among them), then shuts itself down for good.
    with in_process_server(ServerConfig(max_requests=25)) as server:
        api_base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        result = invoke(*GENERATE, "--corpus", tiny_corpus_file, "--out", workdir / "run", "--lm",
                        "openai/sage-offline", "--api-base", api_base, "--lm-retries", "0")
    assert result.exit_code == EXIT_CODE, result.output
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: stopped: the ") and "LM 'openai/sage-offline' failed 5 calls in a row" in line
    records = records_of(workdir / "run")
    assert all(failed_at_service(r) for r in records if r["error"]) and any(r["error"] for r in records)


# ------------------------------------------------------------------------------ compile against a dying retriever

def test_compile_against_a_retriever_dying_mid_compile_stops_with_the_line_and_writes_no_program(
        tiny_passages, tiny_corpus_file, workdir, fast_retries):
    dying = StandIn(tiny_passages, down_after=6)  # the preflight and a few searches, then dead
    with stand_in_server(dying) as url:
        result = invoke("compile", "--no-track", "--optimizer", "bootstrap", "--budget", 2, "--train-size", 3,
                        "--val-size", 2, "--corpus", tiny_corpus_file, "--retriever", url, "--breaker-in-a-row", 2)
    assert result.exit_code == EXIT_CODE, result.output
    assert "Traceback" not in result.output
    [line] = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("compiling")]
    assert line.startswith("error: stopped: the retriever failed 2 calls in a row") and "no program written" in line
    assert not list((workdir / "artifacts" / "programs").rglob("program.json"))
