"""sage_dspy.tracking (store, runs, prompts, programs, secrets) against a real sqlite MLflow store (one per module: each fresh db costs ~1.7 s)."""

import http.server
import json
import math
import socket
import threading
import warnings

import sage_dspy  # noqa: F401  (offline env defaults first)

import cloudpickle
import dspy
import mlflow
import mlflow.dspy
import pytest
from mlflow_store import reset_mlflow_globals
from dspy.utils import DummyLM
from mlflow import MlflowClient

from sage_dspy.tracking import store as tracking
from sage_dspy.tracking.programs import load_program, log_program
from sage_dspy.tracking.prompts import prompt_name, register_prompts
from sage_dspy.tracking.runs import TrackedRun, tracked_run
from sage_dspy.tracking.secrets import REDACTED, scrub_secrets
from sage_dspy.tracking.store import TrackingError, TrackingWarning, configure_tracking

CANARY = "sk-canary-7f3a9c1e5b2d4680"


class Answer(dspy.Signature):
    """Answer the question in one word."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class TwoStep(dspy.Module):
    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict(Answer)
        self.check = dspy.Predict("answer -> verdict")

    def forward(self, question):
        draft = self.draft(question=question)
        return self.check(answer=draft.answer)


def two_step_program():
    program = TwoStep()
    program.draft.demos = [dspy.Example(question="Capital of France?", answer="Paris", augmented=True)]
    return program


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking") / "artifacts"
    with pytest.MonkeyPatch.context() as mp:
        reset_mlflow_globals(mp)
        uri = configure_tracking(root, experiment="tracking-tests")
        yield root, uri
        while mlflow.active_run():
            mlflow.end_run()


@pytest.fixture(autouse=True)
def _restore_dspy_settings():
    # no dspy.context here: autolog must register its callback outside any context
    before = {key: dspy.settings.config[key] for key in ("lm", "adapter", "callbacks")}
    yield
    dspy.configure(**before)


def test_configure_is_embedded_and_idempotent(store, monkeypatch):
    root, uri = store
    assert uri == f"sqlite:///{root.resolve() / 'mlflow.db'}"
    assert configure_tracking(root, experiment="tracking-tests") == uri
    experiment = MlflowClient().get_experiment_by_name("tracking-tests")
    assert experiment.artifact_location == (root.resolve() / "mlflow-artifacts").as_uri()
    assert mlflow.get_tracking_uri() == uri


def test_tracked_run_logs_flattened_scrubbed_params_and_metrics(store, monkeypatch):
    monkeypatch.setenv("SAGE_CANARY_API_KEY", CANARY)
    params = {"lm": {"model": "openai/x", "api_key": CANARY, "max_tokens": 512},
              "note": f"called with {CANARY}", "k": 4, "long": "x" * 7000, "seeds": [1, 2]}
    with tracked_run("params", params=params, tags={"suite": "t", "auth_token": "abc"}) as run:
        run.log_metrics({"dev/score": 0.5, "bad name?": 1, "skip": None, "nan": math.nan}, step=2)
        run.log_metrics({"dev/score": 0.75}, step=3)
    data = MlflowClient().get_run(run.run_id)
    p = data.data.params
    assert p["lm.model"] == "openai/x" and p["lm.max_tokens"] == "512" and p["k"] == "4"
    assert p["lm.api_key"] == REDACTED and p["note"] == f"called with {REDACTED}"
    assert len(p["long"]) <= 6000 and p["seeds"] == "[1, 2]"
    assert data.data.tags["suite"] == "t" and data.data.tags["auth_token"] == REDACTED
    assert set(data.data.metrics) == {"dev/score", "bad name_"}
    history = MlflowClient().get_metric_history(run.run_id, "dev/score")
    assert [(m.step, m.value) for m in history] == [(2, 0.5), (3, 0.75)]
    assert data.info.status == "FINISHED"


def test_failures_warn_and_the_run_goes_on(store, tmp_path):
    with pytest.warns(TrackingWarning) as caught:
        with tracked_run("failures") as run:
            run.log_artifact(tmp_path / "missing.txt")
            run.log_metrics({"score": "not a number"})
            run.log_params({"k": 1})
            run.log_params({"k": 2, "other": 3})  # params are immutable: k fails, other lands
    assert all("\n" not in str(w.message) for w in caught)
    assert len(caught) == 3
    assert MlflowClient().get_run(run.run_id).data.params == {"k": "1", "other": "3"}


def test_body_exception_propagates_and_marks_run_failed(store):
    with pytest.raises(RuntimeError):
        with tracked_run("boom") as run:
            raise RuntimeError("boom")
    assert MlflowClient().get_run(run.run_id).info.status == "FAILED"


def test_tracked_run_nests_inside_an_active_run(store):
    with tracked_run("outer") as outer, tracked_run("inner") as inner:
        assert inner.run_id != outer.run_id
    assert MlflowClient().get_run(inner.run_id).data.tags["mlflow.parentRunId"] == outer.run_id


def test_untracked_run_is_a_silent_no_op(tmp_path):
    run = TrackedRun(None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.log_params({"a": 1}); run.log_metrics({"a": 1.0}); run.set_tags({"a": 1})
        run.log_artifact(tmp_path / "missing"); run.log_dict({}, "a.json"); run.log_text("", "a.txt")


def test_configure_raises_one_line_error_for_a_dead_server(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    with pytest.raises(TrackingError) as error:
        configure_tracking()
    message = str(error.value)
    assert "\n" not in message and f"127.0.0.1:{port}" in message and "unset MLFLOW_TRACKING_URI" in message


def test_configure_accepts_a_server_that_answers_health(monkeypatch):
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # /health answers 200, everything else 404: not really MLflow
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", mlflow.get_tracking_uri())
    try:
        with pytest.warns(TrackingWarning, match="set up experiment"):  # answers, but has no experiments API
            assert configure_tracking() == uri
    finally:
        server.shutdown()


@pytest.mark.parametrize("obj, expected", [
    ({"api_key": "k", "max_tokens": 5, "token_count": 2},
     {"api_key": REDACTED, "max_tokens": 5, "token_count": 2}),
    ({"headers": {"Authorization": "Bearer x"}, "apiKey": "y", "password": None},
     {"headers": {"Authorization": REDACTED}, "apiKey": REDACTED, "password": None}),
    ([f"key {CANARY}!", (CANARY, 3)], [f"key {REDACTED}!", (REDACTED, 3)]),
    ({"client_secret": "s", "HF_TOKEN": "t", "model": "m"},
     {"client_secret": REDACTED, "HF_TOKEN": REDACTED, "model": "m"}),
    ("no secret here, abc", "no secret here, abc"),
])
def test_scrub_secrets(monkeypatch, obj, expected):
    monkeypatch.setenv("SAGE_CANARY_API_KEY", CANARY)
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # shorter than 8: left alone, too likely to be ordinary text
    assert scrub_secrets(obj) == expected


def test_prompt_names_follow_the_registry_rule():
    assert prompt_name("sage", "generator.propose") == "sage.generator.propose"
    assert prompt_name("sage", "steps[0].predict") == "sage.steps.0.predict"
    assert prompt_name("sage", "tools['search web']") == "sage.tools.search_web"


def test_register_prompts_creates_new_versions_only_for_changed_text_and_links_them(store):
    program = two_step_program()
    with tracked_run("first-compile") as first_run:
        first = register_prompts(program, prefix="reg", run_id=first_run.run_id, metrics={"dev_score": 0.5},
                                 tags={"optimizer": "gepa"})
    assert first == {"reg.draft": {"version": 1, "changed": "first version"},
                     "reg.check": {"version": 1, "changed": "first version"}}
    program.draft.signature = program.draft.signature.with_instructions("Answer tersely.")
    with tracked_run("second-compile") as second_run:
        second = register_prompts(program, prefix="reg", run_id=second_run.run_id)
    # only the changed prompt gets a version; the unchanged one keeps v1, linked to this run all the same
    assert second == {"reg.draft": {"version": 2, "changed": "instructions"}, "reg.check": {"version": 1, "changed": ""}}
    assert [v.version for v in MlflowClient().search_prompt_versions("reg.check")] == [1]
    v1, v2 = (mlflow.genai.load_prompt(f"prompts:/reg.draft/{v}") for v in (1, 2))
    assert v1.template.startswith("Answer the question in one word.")
    assert "question: Capital of France?\nanswer: Paris" in v1.template and "augmented" not in v1.template
    assert v1.tags["run_id"] == first_run.run_id and v1.tags["dev_score"] == "0.5" and v1.tags["optimizer"] == "gepa"
    assert v2.template.startswith("Answer tersely.") and v2.tags["changed"] == "instructions"
    # the run pages' "Registered prompts": MLflow's linkedPrompts tag
    linked = {run.run_id: json.loads(MlflowClient().get_run(run.run_id).data.tags["mlflow.linkedPrompts"])
              for run in (first_run, second_run)}
    assert sorted((p["name"], p["version"]) for p in linked[second_run.run_id]) == [("reg.check", "1"),
                                                                                   ("reg.draft", "2")]
    assert sorted((p["name"], p["version"]) for p in linked[first_run.run_id]) == [("reg.check", "1"),
                                                                                  ("reg.draft", "1")]


def test_a_failed_link_keeps_the_registered_version(store):
    with pytest.warns(TrackingWarning, match="link prompt 'lonely.draft'"):
        versions = register_prompts(two_step_program(), prefix="lonely", run_id="no-such-run")
    assert versions["lonely.draft"] == {"version": 1, "changed": "first version"}


def test_log_program_round_trip_keeps_the_api_key_out(store, monkeypatch):
    root, _ = store
    monkeypatch.setenv("SAGE_CANARY_API_KEY", CANARY)
    program = two_step_program()
    program.check.lm = dspy.LM("openai/y", api_key=CANARY)  # a per-predictor LM holds the key too
    program.judge_lm = dspy.LM("openai/z", api_key="sk-other-key-not-in-env")  # and a module attribute
    dspy.configure(lm=dspy.LM("openai/x", api_key=CANARY))  # the global settings hold the key
    # positive control: what mlflow.dspy would pickle does contain the canary
    assert CANARY.encode() in cloudpickle.dumps(dict(dspy.settings.config))
    with tracked_run("log-program"):
        uri = log_program(program)
    assert uri and uri.startswith("models:/")

    # the proof: no byte of either key anywhere in the store (sqlite db, WAL, every artifact)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "program.pkl" for p in files) and any(p.name == "mlflow.db" for p in files)
    secrets = (CANARY.encode(), b"sk-other-key-not-in-env")
    assert [str(p) for p in files if any(secret in p.read_bytes() for secret in secrets)] == []

    loaded = load_program(uri)
    assert isinstance(loaded, TwoStep) and loaded.check.lm is None and loaded.judge_lm is None
    assert loaded.draft.signature.instructions == "Answer the question in one word."
    assert [d.toDict() for d in loaded.draft.demos] == [d.toDict() for d in program.draft.demos]
    assert program.check.lm is not None and program.judge_lm is not None  # the caller's program is untouched
    # MLflow's own loader works too (it needs pickle allowed, and it resets the global dspy settings)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    assert mlflow.dspy.load_model(uri).draft.signature.instructions == "Answer the question in one word."


def test_log_program_refuses_a_program_that_carries_a_secret(store, monkeypatch):
    root, _ = store
    monkeypatch.setenv("SAGE_CANARY_API_KEY", CANARY)
    program = two_step_program()
    program.config_note = f"key={CANARY}"  # not an LM: only the byte scan can catch it
    with pytest.warns(TrackingWarning, match="secret was found"):
        assert log_program(program, name="leaky") is None
    assert [str(p) for p in root.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()] == []


def test_load_program_error_is_one_line(store):
    with pytest.raises(TrackingError, match="could not load a program") as error:
        load_program("models:/m-doesnotexist")
    assert "\n" not in str(error.value)


def test_autolog_traces_a_program_call(store):
    tracking.autolog_dspy()
    try:
        lm = DummyLM([{"answer": "Paris"}, {"verdict": "ok"}])
        with tracked_run("autolog") as run, dspy.context(lm=lm):
            two_step_program()(question="Capital of France?")
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(run_id=run.run_id, return_type="list")
        assert len(traces) == 1
    finally:
        tracking.autolog_dspy(enabled=False)
