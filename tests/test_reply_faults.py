"""Replies that are not what was asked for: a malformed 2xx (retried by SageLM, `reply_retries`) and a reply the
adapter cannot parse (asked again as a fresh rollout, `parse_retries`), counted per role and kept in the record.
The loopback server's `garbage` and `nomarkers` faults are the same cases over HTTP (tests/test_http_lm.py)."""

import dspy
import pytest
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy.utils.exceptions import AdapterParseError, LMProviderError, LMServerError

from sage_dspy.lm.inflight import PARSE_RETRIES, REPLY_RETRIES, SageLM, is_malformed_reply
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.lm.usage import counting_usage
from sage_dspy.method.failures import RAW_REPLY_LIMIT, error_kind, raw_reply
from sage_dspy.method.signatures import JudgeAnswer

GOOD = "[[ ## reasoning ## ]]\nsame person\n\n[[ ## is_correct ## ]]\nTrue\n\n[[ ## completed ## ]]"
BAD = "I am sorry, I cannot help with that."


class Engine:
    """complete(Request) -> the next scripted outcome: a reply text, or an exception to raise."""

    def __init__(self, outcomes):
        self.outcomes, self.rollouts = list(outcomes), []

    def complete(self, request):
        self.rollouts.append(request)
        outcome = self.outcomes.pop(0) if self.outcomes else BAD
        if isinstance(outcome, BaseException):
            raise outcome
        return Response(id=None, model=request.model, message=Message.assistant([TextPart(outcome)]),
                        finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=1))


def judge_once(engine: Engine, **settings):
    """One judge call through the pipeline's LM class and adapter, charged to the judge; (result, usage rows)."""
    lm = SageLM("scripted/judge", engine=engine, cache=False, **settings)
    roles = RoleLMs({"judge": lm})
    with counting_usage() as spent:
        try:
            with roles.use("judge"):
                result = dspy.Predict(JudgeAnswer)(question="Who?", gold_answer="Ada", predicted_answer="Ada M.")
        except Exception as error:  # noqa: BLE001  (the test inspects it)
            result = error
    return result, spent["lm_usage"]


def malformed() -> LMProviderError:
    return LMProviderError("the reply (HTTP 200) is not JSON", status=200)


def test_a_malformed_2xx_reply_is_retried_and_the_call_succeeds():
    engine = Engine([malformed(), malformed(), GOOD])
    result, _ = judge_once(engine)
    assert result.is_correct is True and len(engine.rollouts) == 3


def test_malformed_replies_are_retried_a_bounded_number_of_times():
    engine = Engine([malformed()] * 10)
    result, _ = judge_once(engine, reply_retries=1)
    assert isinstance(result, LMProviderError) and len(engine.rollouts) == 2
    assert REPLY_RETRIES == 2


def test_only_a_malformed_success_reply_is_retried_by_sage_lm():
    """A provider's refusal (4xx: its own subclasses) is not a malformed reply; 5xx are DSPy's to retry."""
    assert is_malformed_reply(malformed())
    assert not is_malformed_reply(LMProviderError("bad request", status=400))
    assert not is_malformed_reply(LMServerError("down", status=503))


def test_an_unparseable_reply_is_asked_again_as_a_fresh_rollout():
    # each try is ChatAdapter's call plus DSPy's JSONAdapter fallback: two replies
    engine = Engine([BAD, BAD, GOOD])
    result, usage = judge_once(engine)
    assert result.is_correct is True and len(engine.rollouts) == 3
    assert [row["parse_failures"] for row in usage if row["role"] == "judge"] == [1]


def test_a_fresh_rollout_is_not_served_from_the_cache(tmp_path):
    """With DSPy's cache on, asking again with the same request would return the same unparseable reply."""
    engine = Engine([BAD, BAD, GOOD])
    lm = SageLM("scripted/judge-cached", engine=engine, cache=True, temperature=1.0)
    with RoleLMs({"judge": lm}).use("judge"):
        result = dspy.Predict(JudgeAnswer)(question="Who cached?", gold_answer="Ada", predicted_answer="Ada")
    assert result.is_correct is True and len(engine.rollouts) == 3


def test_parse_retries_are_bounded_and_the_error_keeps_the_reply():
    engine = Engine([BAD] * 20)
    result, usage = judge_once(engine, parse_retries=1)
    assert isinstance(result, AdapterParseError) and len(engine.rollouts) == 2 * 2
    assert [row["parse_failures"] for row in usage if row["role"] == "judge"] == [2]
    assert error_kind(result) == "AdapterParseError" and BAD in raw_reply(result)
    assert PARSE_RETRIES == 2
    engine = Engine([BAD] * 20)
    assert isinstance(judge_once(engine, parse_retries=0)[0], AdapterParseError) and len(engine.rollouts) == 2


def test_a_raw_reply_is_truncated_and_scrubbed():
    reply = "key sk-abcdef0123456789 at http://alice:secret@127.0.0.1:9/v1 " + "x" * 5000
    kept = raw_reply(AdapterParseError("ChatAdapter", JudgeAnswer, reply))
    assert len(kept) == RAW_REPLY_LIMIT and "sk-abcdef" not in kept and "alice:secret" not in kept
    assert raw_reply(LMServerError("down")) == ""
    assert "abc.def" not in raw_reply(AdapterParseError("ChatAdapter", JudgeAnswer, "Authorization: Bearer abc.def"))


@pytest.mark.parametrize("setting, value", [("parse_retries", 0), ("reply_retries", 5)])
def test_the_retry_settings_reach_the_lm_from_config_and_environment(tmp_path, setting, value):
    from sage_dspy.lm.roles import build_lm
    from sage_dspy.lm.settings import load_settings

    config = tmp_path / "sage.toml"
    config.write_text(f'[lm]\nmodel = "openai/m"\n{setting} = {value}\n', encoding="utf-8")
    settings = load_settings(config, {})
    assert settings.run_options == {setting: value}
    assert getattr(build_lm("openai/m", "judge", **settings.run_options), setting) == value
    env = load_settings(None, {f"SAGE_LM_{setting.upper()}": str(value)})
    assert env.run_options == {setting: value}


@pytest.mark.parametrize("command", ["generate", "evaluate", "solve", "compile"])
def test_parse_retries_is_an_option_of_every_command_that_builds_lms(command):
    from typer.testing import CliRunner

    from sage_dspy.cli.app import app
    from sage_dspy.cli.options import lm_settings

    assert "--lm-parse-retries" in CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    assert lm_settings(None, {}, parse_retries=1).run_options == {"parse_retries": 1}
