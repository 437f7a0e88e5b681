"""Credentials never reach a file, a log line or MLflow (issue #10, defect 1): the one redaction every writer goes
through, the writers that use it, and endpoints with user:password@ refused in one line."""

import json

import pytest

from cli_helpers import assert_one_line_error, invoke
from sage_dspy.lm.endpoint import EndpointError, check_api_base
from sage_dspy.lm.inflight import SageLM
from sage_dspy.lm.roles import RoleLMs, build_lm
from sage_dspy.lm.settings import from_environment
from sage_dspy.redact import REDACTED, error_text, redact, redact_text
from sage_dspy.runs.folder import RunFolder
from sage_dspy.runs.preflight import LMUnreachableError, check_lms
from sage_dspy.runs.scheduler import run_seed
from sage_dspy.runs.seeds import SeedTask
from sage_dspy.search.passages import Passage
from sage_dspy.tracking.secrets import scrub_secrets

SECRET = "s3cr3t-pa55word-value"


def closed_port() -> int:
    import socket

    with socket.socket() as probe:  # bound then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("text", [
    f"Connection refused: http://alice:{SECRET}@127.0.0.1:9/v1/chat/completions",
    f"https://{SECRET}@gateway.example/v1",
    f"[openai/m] failed to connect to alice:{SECRET}@127.0.0.1:40875: [Errno -2] Name or service not known",
    f"GET http://127.0.0.1:9/v1?api_key={SECRET}&model=x",
    f"GET http://127.0.0.1:9/v1?model=x&token={SECRET}",
    f"url=http://h/v1?key={SECRET}#frag",
    f"headers {{'Authorization': 'Bearer {SECRET}'}}",
    f"Authorization: Basic {SECRET}",
    f"api_key='{SECRET}' was refused",
    f'{{"password": "{SECRET}"}}',
    "Incorrect API key provided: sk-proj-abcdefghijklmnop1234",
    "token hf_abcdefghijklmnopqrstuvwx is invalid",
])
def test_every_kind_of_credential_is_hidden(text):
    hidden = redact_text(text)
    assert SECRET not in hidden and "abcdefghijklmnop" not in hidden and REDACTED in hidden, hidden


def test_what_is_no_secret_stays():
    text = "LMServerError: HTTP 500 from http://127.0.0.1:8000/v1?model=x (max_tokens=5, token_count=2)"
    assert redact_text(text) == text


def test_configured_keys_are_hidden_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("MYPROVIDER_API_KEY", "plainkey-without-shape-42")
    assert redact({"note": "sent plainkey-without-shape-42", "n": 3}) == {"note": f"sent {REDACTED}", "n": 3}
    assert scrub_secrets(f"x http://u:{SECRET}@h/") == f"x http://{REDACTED}@h/"  # MLflow's scrub is this one


def test_an_error_is_redacted_before_it_is_cut():
    """A cut through the URL would leave 'http://alice:s3cr3t-pa' unmatched by any pattern."""
    error = ConnectionError(f"failed: http://alice:{SECRET}@127.0.0.1:9/v1")
    for limit in range(20, 60):
        assert SECRET[:6] not in error_text(error, limit)
    assert error_text(error) == f"ConnectionError: failed: http://{REDACTED}@127.0.0.1:9/v1"


def test_a_seed_failure_with_credentials_reaches_the_record_redacted(tmp_path):
    def program(**_):
        raise ConnectionError(f"cannot reach http://alice:{SECRET}@127.0.0.1:9/v1 " + "x" * 600)

    task = SeedTask(Passage("p1", "T", "text"), 2, "entity")
    record = run_seed(program, task, {"generator": "openai/m"})
    assert SECRET[:6] not in record["error"] and REDACTED in record["error"]
    folder = RunFolder(tmp_path / "run", {"seeds": 1})
    folder.open()
    folder.append({**record, "rounds": [{"attempts": [{"error": f"Bearer {SECRET}"}]}]})  # any field
    assert SECRET not in folder.records_path.read_text(encoding="utf-8")
    assert json.loads(folder.records_path.read_text(encoding="utf-8"))["seed_id"] == "p1"


def test_the_preflight_line_holds_no_credentials():
    port = closed_port()
    lm = SageLM("openai/sage-offline", api_base=f"http://127.0.0.1:{port}/v1?api_key={SECRET}",
                api_key=SECRET, num_retries=0, cache=False)
    with pytest.raises(LMUnreachableError) as caught:
        check_lms(RoleLMs({"generator": lm}))
    assert SECRET not in str(caught.value) and "did not answer" in str(caught.value)


@pytest.mark.parametrize("api_base", [f"http://alice:{SECRET}@127.0.0.1:9/v1", f"http://{SECRET}@127.0.0.1:9/v1"])
def test_an_endpoint_with_userinfo_is_refused_without_repeating_it(api_base):
    with pytest.raises(EndpointError) as caught:
        check_api_base(api_base)
    assert "carries credentials" in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(EndpointError):
        build_lm("openai/m", "generator", api_base=api_base)
    with pytest.raises(EndpointError, match="SAGE_API_BASE carries credentials"):
        from_environment({"SAGE_API_BASE": api_base})
    assert check_api_base("http://127.0.0.1:9/v1") == "http://127.0.0.1:9/v1"


def test_the_cli_refuses_userinfo_in_one_line_and_writes_nothing(workdir):
    out = workdir / "run"
    result = invoke("generate", "--seeds", "1", "--lm", "openai/m", "--no-track", "--out", out,
                    "--api-base", f"http://alice:{SECRET}@127.0.0.1:{closed_port()}/v1")
    assert_one_line_error(result, "carries credentials")
    assert SECRET not in result.output and not out.exists()
