"""The endpoint is part of DSPy's response-cache key, the preflight always reaches the endpoint, and a resumed
run notices a changed endpoint and retries its failed seeds (issue #10, defects 2 and 4).

Two loopback servers serve the same model name with different answers: a clean one (the offline LM's replies)
and one whose every reply is the refusal text with no field markers (`nomarkers`)."""

import json
import socket
from contextlib import ExitStack

import dspy
import pytest

from cli_helpers import assert_one_line_error, invoke
from sage_dspy.lm.endpoint import fingerprint
from sage_dspy.lm.roles import RoleLMs, build_lm
from sage_dspy.offline.http import NO_MARKERS_TEXT, ServerConfig
from sage_dspy.runs.folder import done_records, retried_on_resume
from sage_dspy.runs.preflight import check_lms
from server_fixture import in_process_server

MODEL = "openai/sage-offline"


@pytest.fixture(scope="module")
def two_servers():
    """(clean, refusing): the same model name, different answers."""
    with ExitStack() as stack:
        yield (stack.enter_context(in_process_server(ServerConfig(idle_exit=120))),
               stack.enter_context(in_process_server(ServerConfig(fault_rate=1.0, faults=("nomarkers",),
                                                                  idle_exit=120))))


@pytest.fixture
def cache_on(tmp_path, monkeypatch):
    """DSPy's cache as a real run has it (memory and disk, here in tmp_path); the suite's no-cache after."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(tmp_path / "cache"))
    yield
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)


def api_base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reply(lm, prompt: str) -> str:
    return lm(messages=[{"role": "user", "content": prompt}])[0]


def test_one_model_at_two_endpoints_gets_two_cache_entries(two_servers, cache_on):
    clean, refusing = two_servers
    first = build_lm(MODEL, "judge", api_base=api_base(clean), num_retries=0)
    second = build_lm(MODEL, "judge", api_base=api_base(refusing), num_retries=0)
    prompt = "[[ ## question ## ]]\nWho designed Harbor Bridge?"
    before = refusing.stats.completions
    assert reply(first, prompt) != NO_MARKERS_TEXT
    assert reply(second, prompt) == NO_MARKERS_TEXT  # from the second server, not the first one's cache entry
    assert refusing.stats.completions == before + 1
    served = clean.stats.completions
    assert reply(build_lm(MODEL, "judge", api_base=api_base(clean) + "/"), prompt) != NO_MARKERS_TEXT
    assert clean.stats.completions == served  # the same endpoint, spelt otherwise: still one entry


def test_the_preflight_reaches_the_endpoint_even_when_the_reply_is_cached(two_servers, cache_on):
    clean, _ = two_servers
    lm = build_lm(MODEL, "generator", api_base=api_base(clean), num_retries=0)
    check_lms(RoleLMs({"generator": lm}))
    served = clean.stats.completions
    check_lms(RoleLMs({"generator": lm}))
    assert clean.stats.completions == served + 1


def generate_over(server_or_base, out, *extra):
    base = server_or_base if isinstance(server_or_base, str) else api_base(server_or_base)
    # --allow-weak-judge: the refusing server fails the judge's calibration too, and its seeds are the point here
    return invoke("generate", "--seeds", "2", "--lm", MODEL, "--api-base", base, "--lm-retries", "0",
                  "--no-track", "--allow-weak-judge", "--out", out, *extra)


def records_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]


def test_a_dead_endpoint_after_a_live_run_fails_the_preflight_in_one_line(two_servers, cache_on, workdir):
    clean, _ = two_servers
    assert generate_over(clean, workdir / "live").exit_code == 0
    result = generate_over(f"http://127.0.0.1:{closed_port()}/v1", workdir / "dead")
    assert_one_line_error(result, "did not answer")


def test_answers_cached_from_one_endpoint_are_not_served_for_another(two_servers, cache_on, workdir):
    clean, refusing = two_servers
    assert generate_over(clean, workdir / "a").exit_code == 0
    before = refusing.stats.completions
    generate_over(refusing, workdir / "b")
    assert refusing.stats.completions > before + 1  # the preflight and the seeds' calls reached it
    assert all(record["error"] for record in records_of(workdir / "b"))  # its refusals, not the clean answers
    assert not any(record["error"] for record in records_of(workdir / "a"))


def test_fixing_the_endpoint_retries_the_seeds_it_failed(two_servers, cache_on, workdir):
    clean, refusing = two_servers
    out = workdir / "run"
    generate_over(refusing, out)
    failed = records_of(out)
    assert failed and all(r["error"] and not r["error"].startswith("LM") for r in failed)  # not service faults
    settings = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert settings["endpoints"]["generator"] == fingerprint(api_base(refusing))
    assert str(refusing.server_address[1]) not in json.dumps(settings)  # a fingerprint, not the URL

    again = generate_over(refusing, out)  # the same endpoint: the same replies, kept (the cache would serve them)
    assert [r["error"] for r in records_of(out)] == [r["error"] for r in failed]
    assert again.exit_code in (0, 1) and "other settings" not in again.output

    fixed = generate_over(clean, out)
    assert fixed.exit_code == 0, fixed.output
    assert not any(record["error"] for record in records_of(out))
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["endpoints"]["generator"] == \
        fingerprint(api_base(clean))


@pytest.mark.parametrize("record, same_endpoint, changed_endpoint", [
    ({"error": "LMRateLimitError: 429"}, True, True),
    ({"error": "LMProviderError: the reply is not JSON"}, True, True),  # a malformed reply
    ({"error": "LMNotFoundError: HTTP 404"}, False, True),
    ({"error": "AdapterParseError: no fields"}, False, True),
    ({"error": "", "rounds": [{"attempts": [{"error": "LMNotFoundError: HTTP 404"}]}]}, False, True),
    ({"error": "", "rounds": [{"attempts": [{"error": ""}]}]}, False, False),
])
def test_which_failures_a_re_run_retries(record, same_endpoint, changed_endpoint):
    assert retried_on_resume(record, endpoint_changed=False) is same_endpoint
    assert retried_on_resume(record, endpoint_changed=True) is changed_endpoint
    keyed = {"seed_id": "p", "target": 2, "answer_type": "entity", **record}
    assert (done_records([keyed], endpoint_changed=True) == {}) is changed_endpoint


def test_a_fingerprint_names_the_server_not_its_credentials():
    assert fingerprint("http://127.0.0.1:8000/v1") == fingerprint("HTTP://127.0.0.1:8000/v1/")
    assert fingerprint("http://127.0.0.1:8000/v1?api_key=x") == fingerprint("http://127.0.0.1:8000/v1")
    assert fingerprint("http://127.0.0.1:80/v1") == fingerprint("http://127.0.0.1/v1")
    assert fingerprint("http://127.0.0.1:8000/v1") != fingerprint("http://127.0.0.1:8001/v1")
    assert fingerprint("http://127.0.0.1:8000/v1") != fingerprint("http://127.0.0.1:8000/v2")
