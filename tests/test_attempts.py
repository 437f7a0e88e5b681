"""The K attempts at a pair: early stop, attempts at once, the bound on calls in flight, and service faults."""

import contextvars
import json
import threading
import time

import dspy
import pytest
from dspy.lm15 import Message, Response, TextPart, Usage

from sage_dspy.method.attempts import run_attempts
from sage_dspy.method.feedback import Attempt, settles_too_easy, verdict_for
from sage_dspy.lm.inflight import AttemptStopped, SageLM, call_slots, in_lane, stoppable
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.method.failures import error_kind, legacy_kind_from_message
from sage_dspy.method.loop import ServiceUnavailable
from sage_dspy.runs.folder import failed_at_service
from sage_dspy.runs.generate import generate

# What a run spent differs between the ways of running the same seeds; the records must not.
VOLATILE = {"lm_calls", "prompt_tokens", "completion_tokens", "seconds", "lm_usage", "cost_usd"}


def correct(searches: int) -> Attempt:
    return Attempt("x", searches, True)


WRONG = Attempt("y", 3, False)


# ------------------------------------------------------------------------------------------ run_attempts

def scripted(attempts: list[Attempt], delays: list[float] | None = None):
    """try_attempt for run_attempts: attempt i after delays[i] seconds; records which attempts ran."""
    ran = []

    def try_attempt(index: int) -> Attempt:
        time.sleep((delays or [0.0] * len(attempts))[index])
        ran.append(index)
        return attempts[index]
    return try_attempt, ran


def test_in_order_the_attempts_stop_at_the_first_that_settles():
    try_attempt, ran = scripted([WRONG, correct(1), correct(0), WRONG])
    result = run_attempts(try_attempt, 4, lambda a: settles_too_easy(a, target=3))
    assert result == [WRONG, correct(1)] and ran == [0, 1]


def test_without_a_settling_rule_every_attempt_runs():
    try_attempt, ran = scripted([correct(1)] * 4)
    assert run_attempts(try_attempt, 4, None) == [correct(1)] * 4 and ran == [0, 1, 2, 3]


@pytest.mark.parametrize("delays", [[0.0, 0.0, 0.0, 0.0], [0.15, 0.1, 0.05, 0.0], [0.0, 0.1, 0.0, 0.05]])
def test_at_once_the_result_is_the_in_order_result_whatever_finishes_first(delays):
    attempts = [WRONG, correct(5), correct(1), correct(0)]
    settles = lambda a: settles_too_easy(a, target=3)  # noqa: E731
    in_order = run_attempts(scripted(attempts)[0], 4, settles)
    at_once = run_attempts(scripted(attempts, delays)[0], 4, settles, parallel=True)
    assert at_once == in_order == [WRONG, correct(5), correct(1)]


class CountingEngine:
    """A slow engine that counts calls and the most it ever served at once."""

    def __init__(self, seconds: float = 0.02):
        self.seconds, self.calls, self.now, self.most = seconds, 0, 0, 0
        self._lock = threading.Lock()

    def complete(self, request):
        with self._lock:
            self.calls += 1
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.seconds)
        with self._lock:
            self.now -= 1
        return Response(id=None, model=request.model, message=Message.assistant([TextPart("ok")]),
                        finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=1))


def test_attempts_after_the_settling_one_are_stopped_at_their_next_call():
    engine = CountingEngine()
    lm = SageLM("local/counting", engine=engine, cache=False)
    stopped = []

    def try_attempt(index: int) -> Attempt:
        if index == 0:
            lm("one call")
            return correct(0)  # settles at once
        try:
            for _ in range(100):  # a long attempt: 100 calls of 20 ms
                lm("another step")
        except AttemptStopped:
            stopped.append(index)
            return Attempt("", 0, False, error="stopped")
        return WRONG

    result = run_attempts(try_attempt, 3, lambda a: settles_too_easy(a, target=2), parallel=True)
    assert result == [correct(0)]
    assert sorted(stopped) == [1, 2]
    assert engine.calls < 20  # not the 201 calls of running both long attempts to the end


def test_a_stop_request_is_checked_before_the_call_is_made():
    engine, event = CountingEngine(0.0), threading.Event()
    lm = SageLM("local/counting", engine=engine, cache=False)
    event.set()
    with stoppable(event), pytest.raises(AttemptStopped):
        lm("never sent")
    assert engine.calls == 0


def test_call_slots_bound_the_calls_in_flight_across_threads():
    engine = CountingEngine(0.02)
    lm = SageLM("local/counting", engine=engine, cache=False)
    with call_slots(3):
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(lambda: [lm("x") for _ in range(3)],))
                   for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert engine.calls == 36 and engine.most == 3


# ------------------------------------------------------------------------------------------ service faults

def test_a_service_fault_counts_for_neither_side_of_the_verdict():
    faulted = Attempt("", 0, False, error="LMRateLimitError: slow down", error_kind="LMRateLimitError",
                      failed_in="solver")
    judge_down = Attempt("x", 2, False, error="judge failed: LMServerError: 500", error_kind="LMServerError",
                         failed_in="judge")
    verdict = verdict_for([correct(3), WRONG, faulted, judge_down], target=3)
    assert verdict.avg_at_k == 0.5 and verdict.attempts == 2 and verdict.accepted
    # an agent failure (unparseable output) is the agent's: it counts against the pair
    unparsed = Attempt("", 0, False, error="AdapterParseError: no fields", error_kind="AdapterParseError",
                       failed_in="solver")
    assert verdict_for([correct(3), unparsed], target=3).avg_at_k == 0.5
    # the kind decides, not the message: a message that merely looks like a service fault is the agent's
    lookalike = Attempt("", 0, False, error="LMServerError: in the answer text", error_kind="ValueError",
                        failed_in="solver")
    assert verdict_for([correct(3), lookalike], target=3).attempts == 2


def test_the_kind_is_the_dspy_class_where_the_failure_is_caught():
    from dspy.utils.exceptions import AdapterParseError, LMProviderError, LMServerError

    class ProviderOwn503(LMServerError):
        pass

    assert error_kind(ProviderOwn503("503")) == "LMServerError"
    assert error_kind(LMProviderError("not JSON")) == "LMProviderError"
    assert error_kind(AdapterParseError("ChatAdapter", dspy.Signature("a -> b"), "junk")) == "AdapterParseError"
    assert error_kind(ServiceUnavailable("all down")) == "ServiceUnavailable"
    assert error_kind(KeyError("x")) == "KeyError"


def test_only_service_failures_are_retried_on_resume():
    assert failed_at_service({"error": "LMServerError: 503", "error_kind": "LMServerError"})
    assert failed_at_service({"error": "every attempt failed at the LM service", "error_kind": "ServiceUnavailable"})
    assert not failed_at_service({"error": "AdapterParseError: no fields", "error_kind": "AdapterParseError"})
    assert not failed_at_service({"error": "", "error_kind": ""})
    assert not failed_at_service({"error": "LMServerError: quoted", "error_kind": "ValueError"})


def test_a_seed_whose_attempts_partly_failed_at_the_service_is_redone_on_resume():
    """Its Avg@K was counted over fewer than K attempts: a re-run redoes it, so every seed ends over K."""
    def seed(*attempts):
        return {"error": "", "error_kind": "", "rounds": [{"attempts": list(attempts)}]}
    ok = {"error": "", "error_kind": "", "failed_in": ""}
    assert failed_at_service(seed(ok, {"error": "LMProviderError: not JSON", "error_kind": "LMProviderError",
                                       "failed_in": "solver"}))
    assert failed_at_service(seed(ok, {"error": "judge failed: AdapterParseError: x", "error_kind": "AdapterParseError",
                                       "failed_in": "judge"}))
    assert not failed_at_service(seed(ok, {"error": "AdapterParseError: x", "error_kind": "AdapterParseError",
                                           "failed_in": "solver"}))
    assert not failed_at_service(seed(ok, ok))


def test_records_written_before_error_kind_still_resume_by_their_message():
    """An old folder's records have no error_kind: the one legacy reader decides from the message."""
    assert failed_at_service({"error": "LMServerError: 503"})
    assert failed_at_service({"error": "ServiceUnavailable: every attempt failed at the LM service (...)"})
    assert not failed_at_service({"error": "AdapterParseError: no fields"})
    assert not failed_at_service({"error": ""})
    assert failed_at_service({"error": "", "rounds": [{"attempts": [{"error": "judge failed: KeyError: x"}]}]})
    assert legacy_kind_from_message("judge failed: LMServerError: 500") == ("LMServerError", "judge")


def test_a_seed_the_service_failed_is_run_again_when_the_run_resumes(tmp_path, tiny_corpus_file):
    config = GenerateConfig(corpus=str(tiny_corpus_file), seeds=3, out_dir=tmp_path / "run",
                            index_root=tmp_path / "indexes")
    first = generate(config)
    lines = first.records_path.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[1]) | {"error": "LMRateLimitError: rate limited", "rounds": [], "question": ""}
    first.records_path.write_text("\n".join([lines[0], json.dumps(broken), lines[2]]) + "\n", encoding="utf-8")

    again = generate(config)
    assert [r["error"] for r in again.records] == ["", "", ""]
    assert [{k: v for k, v in r.items() if k not in VOLATILE} for r in again.records] == \
           [{k: v for k, v in r.items() if k not in VOLATILE} for r in first.records]


# ------------------------------------------------------------------------------------------ the pipeline

def test_attempts_at_once_give_the_records_of_attempts_in_order(tmp_path):
    config = GenerateConfig(seeds=12, out_dir=tmp_path / "in-order", index_root=tmp_path / "indexes")
    in_order = generate(config)
    at_once = generate(GenerateConfig(seeds=12, out_dir=tmp_path / "at-once", index_root=tmp_path / "indexes"),
                       parallel_attempts=True, workers=2)
    strip = lambda records: [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]  # noqa: E731
    assert strip(at_once.records) == strip(in_order.records)
    assert any(len(past["attempts"]) < config.k for r in in_order.records for past in r["rounds"])


def test_the_lean_protocol_keeps_the_paper_protocols_pairs_for_fewer_calls(tmp_path):
    runs = {protocol: generate(GenerateConfig(seeds=20, protocol=protocol, out_dir=tmp_path / protocol,
                                              index_root=tmp_path / "indexes"))
            for protocol in ("lean", "paper")}
    accepted = {protocol: [(r["seed_id"], r["question"], r["answer"]) for r in run.records if r["accepted"]]
                for protocol, run in runs.items()}
    calls = {protocol: sum(r["lm_calls"] for r in run.records) for protocol, run in runs.items()}
    assert accepted["lean"] == accepted["paper"] and accepted["lean"]
    assert calls["lean"] < calls["paper"]
    judged = {a["judged_by"] for r in runs["paper"].records for past in r["rounds"] for a in past["attempts"]}
    assert judged == {"lm"}


# ------------------------------------------------------------------------------------------ connection lanes

def test_a_role_gets_one_independent_lm_per_hundred_calls_in_flight():
    assert [RoleLMs.lanes_for(n) for n in (1, 100, 101, 256)] == [1, 1, 2, 3]
    lms = RoleLMs.from_specs({"solver": "openai/some-model", "judge": "offline"}, lanes=3,
                             api_base="http://127.0.0.1:9/v1")
    solver_lanes = lms.lanes["solver"]
    assert len(solver_lanes) == 3 and len({id(lm) for lm in solver_lanes}) == 3
    assert {lm.model for lm in solver_lanes} == {"openai/some-model"} and lms.lms["solver"] is solver_lanes[0]
    assert "judge" not in lms.lanes  # the offline LM runs in process: no connections to spread
    seen = []
    for lane in (0, 1, 2, 3, 4):
        with in_lane(lane), lms.use("solver"):
            seen.append(dspy.settings.lm)
    assert seen == [solver_lanes[0], solver_lanes[1], solver_lanes[2], solver_lanes[0], solver_lanes[1]]
