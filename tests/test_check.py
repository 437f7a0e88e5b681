"""`sage check`: per role, what a model does on fixed small tasks, and a verdict. On the offline LM, on a real
135M model's recorded replies (the replay server, ../shared/data/real-llm), on a closed port, and the verdict
rules on hand-made measures."""

import socket

import pytest

from cli_helpers import invoke
from sage_dspy.runs.check import RoleMeasure, verdict_of
from test_replay import api_base, needs_recordings, replay

FAST = ("--lm-retries", 0, "--lm-timeout", 5)  # a 500 from the replay server is not retried for seconds


def verdict_lines(output: str) -> dict[str, str]:
    """{role: its verdict} from the lines 'role: verdict; advice: ...'."""
    return {line.split(":", 1)[0]: line.split(": ", 1)[1].split("; advice:")[0] for line in output.splitlines()
            if line.split(":", 1)[0] in ("generator", "solver", "judge", "reviser")}


def test_the_offline_lm_is_usable_in_every_role_and_says_it_is_offline():
    result = invoke("check")
    assert result.exit_code == 0, result.output
    assert verdict_lines(result.stdout) == dict.fromkeys(("generator", "solver", "judge", "reviser"), "usable")
    assert "6/6" in result.stdout  # the judge's calibration items
    assert "not the quality of an LLM" in result.stdout


@needs_recordings
def test_the_real_models_replayed_replies_are_not_usable_where_they_fail():
    """The model's JSON-schema run: every tool call it made had arguments the tool refuses, and its judge said
    'correct' to anything; the recording holds no reviser reply, which is not checked rather than judged."""
    with replay("schema_records.jsonl") as server:
        result = invoke("check", "--lm", "hosted_vllm/smollm2", "--api-base", api_base(server), "--max-tokens", 256,
                        *FAST)
    assert result.exit_code == 1, result.output
    verdicts = verdict_lines(result.stdout)
    assert verdicts["generator"].startswith("not usable: 0 of 2 tool calls valid; no search retrieved a passage")
    assert verdicts["solver"].startswith("not usable: 0 of 4 tool calls valid; no search retrieved a passage")
    assert verdicts["judge"] == "not usable: 3 of 6 calibration items right"
    assert verdicts["reviser"].startswith("not checked: the LM service failed")
    assert "the recording has no reviser reply" in verdicts["reviser"]
    assert "pass a stronger --judge-lm" in result.stdout
    assert "offline" not in result.stdout


@needs_recordings
def test_the_real_models_chat_format_replies_do_not_parse():
    with replay("chat_records.jsonl") as server:
        result = invoke("check", "--generator-lm", "hosted_vllm/smollm2", "--api-base", api_base(server), *FAST)
    assert result.exit_code == 1, result.output
    verdicts = verdict_lines(result.stdout)
    assert verdicts["generator"].startswith("not usable: 3 of 6 replies unparseable")
    assert "does not answer in the program's format" in result.stdout
    assert {verdicts[role] for role in ("solver", "judge", "reviser")} == {"usable"}  # still offline there


@needs_recordings
def test_a_second_check_asks_the_server_again_never_the_response_cache():
    """A check describes the server as it is now: with DSPy's memory cache on, as it is for real LMs outside
    the tests, the second check sends the same calls again instead of reading the first one's replies."""
    import dspy

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    try:
        with replay("schema_records.jsonl") as server:
            first = invoke("check", "--judge-lm", "hosted_vllm/smollm2", "--api-base", api_base(server), *FAST)
            after_first = server.stats.completions
            second = invoke("check", "--judge-lm", "hosted_vllm/smollm2", "--api-base", api_base(server), *FAST)
            after_second = server.stats.completions
    finally:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    assert verdict_lines(first.stdout)["judge"] == verdict_lines(second.stdout)["judge"]
    assert after_first > 0 and after_second == 2 * after_first


def test_an_unreachable_endpoint_is_not_checked_never_a_verdict():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    result = invoke("check", "--judge-lm", "hosted_vllm/m", "--api-base", f"http://127.0.0.1:{closed}/v1", *FAST)
    assert result.exit_code == 1, result.output
    verdict = verdict_lines(result.stdout)["judge"]
    assert verdict.startswith("not checked: the LM service failed") and "Traceback" not in result.output


def measure(adapter="chat", **fields) -> RoleMeasure:
    base = dict(calls=4, tool_calls=3, valid_tool_calls=3, retrievals=2)
    return RoleMeasure("solver", "m", adapter, **{**base, **fields})


@pytest.mark.parametrize("measures, verdict", [
    ([measure()], "usable"),
    ([measure(parse_failures=1, calls=5)], "usable"),  # 80% parsed is enough
    ([measure(parse_failures=2, calls=5)], "not usable: 2 of 5 replies unparseable"),
    ([measure(valid_tool_calls=2)], "not usable: 2 of 3 tool calls valid"),
    ([measure(retrievals=0)], "not usable: no search retrieved a passage"),
    ([measure(longest_reply=753, max_tokens=256)], "not usable: a reply of 753 tokens over max tokens 256"),
    ([measure(retrievals=0), measure("json-schema")], "usable with --adapter json-schema"),
    ([measure(retrievals=0), measure("json", service_error="down"), measure("json-schema", retrievals=0)],
     "not usable: no search retrieved a passage"),
    ([measure(service_error="LMServerError: 500")], "not checked: the LM service failed (LMServerError: 500)"),
])
def test_the_verdict_takes_the_first_adapter_under_which_the_role_is_usable(measures, verdict):
    assert verdict_of("solver", measures).verdict == verdict
