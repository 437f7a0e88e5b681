"""LM settings per role from options, the environment and a TOML file: precedence, refusals, and what reaches
dspy.LM and the run's config.json."""

import json
import os

import pytest

import sage_dspy.cli.generate as cli
from cli_helpers import assert_one_line_error, invoke
from sage_dspy.lm.settings import ConfigError, Layer, from_environment, load_settings, read_config_file
from sage_dspy.lm.roles import ALL_ROLES, DEFAULT_TEMPERATURES, ROLES, RoleLMs, build_lm, offline_lm
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.preflight import LMUnreachableError


@pytest.fixture(autouse=True)
def _no_sage_environment(monkeypatch):
    """The developer's own SAGE_* variables must not leak into these tests."""
    for name in [name for name in os.environ if name.startswith("SAGE_")]:
        monkeypatch.delenv(name)


def write(tmp_path, text: str, name: str = "sage.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


FILE = """
[lm]
model = "openai/from-file"
max_tokens = 1000
seed = 7

[lm.judge]
model = "openai/file-judge"
temperature = 0.2
"""


@pytest.mark.parametrize("env, options, expected", [
    # the file alone: its role table beats its [lm]
    ({}, Layer(), {"generator": "openai/from-file", "judge": "openai/file-judge"}),
    # the environment beats the file; within the environment a role's own variable beats SAGE_LM
    ({"SAGE_GENERATOR_LM": "openai/env-generator"}, Layer(),
     {"generator": "openai/env-generator", "judge": "openai/file-judge", "solver": "openai/from-file"}),
    ({"SAGE_LM": "openai/env-all"}, Layer(), {"generator": "openai/env-all", "judge": "openai/env-all"}),
    # options beat everything: --lm X makes every role X, whatever the file says for the judge
    ({"SAGE_LM": "openai/env-all"}, Layer({"model": "openai/option"}),
     {"generator": "openai/option", "judge": "openai/option", "reflection": "openai/option"}),
    ({"SAGE_LM": "openai/env-all"}, Layer({"model": "openai/option"}, {"judge": {"model": "openai/option-judge"}}),
     {"generator": "openai/option", "judge": "openai/option-judge"}),
])
def test_precedence_is_options_then_environment_then_file(tmp_path, env, options, expected):
    settings = load_settings(write(tmp_path, FILE), env, options)
    assert {role: settings.models[role] for role in expected} == expected


def test_defaults_are_the_offline_lm_and_nothing_else():
    settings = load_settings(None, {}, Layer())
    assert set(settings.models.values()) == {"offline"}
    assert settings.split(ROLES) == ({}, {})
    assert settings.prices == {}


def test_settings_per_role_and_run_wide_settings(tmp_path):
    env = {"SAGE_SOLVER_MAX_TOKENS": "300", "SAGE_LM_TIMEOUT": "30", "SAGE_API_BASE": "http://127.0.0.1:9/v1"}
    settings = load_settings(write(tmp_path, FILE), env, Layer({"retries": 1}))
    shared, per_role = settings.split(ROLES)
    # the same endpoint for every role is stated once; settings that differ are given per role
    assert shared == {"seed": 7, "timeout": 30.0, "num_retries": 1, "api_base": "http://127.0.0.1:9/v1"}
    assert per_role == {"generator": {"max_tokens": 1000}, "solver": {"max_tokens": 300},
                        "judge": {"temperature": 0.2, "max_tokens": 1000}, "reviser": {"max_tokens": 1000}}


def test_per_role_temperature_and_max_tokens_reach_dspy_lm(tmp_path):
    settings = load_settings(write(tmp_path, FILE), {"SAGE_GENERATOR_MAX_TOKENS": "2048"}, Layer())
    shared, per_role = settings.split(ROLES)
    lms = RoleLMs.from_specs(settings.lms(ROLES), role_options=per_role, **shared).lms
    assert lms["judge"].kwargs["temperature"] == 0.2 and lms["judge"].kwargs["max_tokens"] == 1000
    assert lms["generator"].kwargs["temperature"] == DEFAULT_TEMPERATURES["generator"] == 1.0
    assert lms["generator"].kwargs["max_tokens"] == 2048
    assert lms["solver"].kwargs["seed"] == 7
    shared, per_role = settings.split(ALL_ROLES)  # as `sage compile` builds GEPA's reflection LM
    reflection = build_lm("openai/x", "reflection", **{**shared, **per_role.get("reflection", {})})
    assert reflection.kwargs["temperature"] == 1.0 and reflection.kwargs["max_tokens"] == 1000  # GEPA's default


def test_the_offline_lm_ignores_per_role_settings():
    lms = RoleLMs.from_specs({"generator": "offline", "judge": "offline"},
                             role_options={"judge": {"temperature": 0.7, "max_tokens": 5}}, max_tokens=9)
    assert lms.lms["judge"] is lms.lms["generator"]
    assert lms.lms["judge"].kwargs == offline_lm().kwargs


@pytest.mark.parametrize("text, where", [
    ('[lm]\napi_key = "sk-x"\n', "[lm]"),
    ('[lm.judge]\nmodel = "openai/x"\nOPENAI_API_KEY = "sk-x"\n', "[lm.judge]"),
    ('token = "abc"\n', "the top level"),
    ('[prices]\n"openai/x" = { input = 1, output = 2, secret = "s" }\n', '[prices] "openai/x"'),
])
def test_a_key_in_the_file_is_refused_in_one_line(tmp_path, text, where):
    with pytest.raises(ConfigError) as error:
        read_config_file(write(tmp_path, text))
    message = str(error.value)
    assert "\n" not in message and where in message and "keys come from the environment only" in message
    assert "sk-x" not in message  # the secret itself is never repeated


@pytest.mark.parametrize("text, expected", [
    ('[lms]\nmodel = "x/y"\n', "unknown key 'lms' in the top level; allowed: lm, prices"),
    ('[lm]\ntemperature = 0.5\n', "unknown key 'temperature' in [lm]; allowed: model, api_base, max_tokens, adapter, "
                                  "seed, "
                                  "timeout, retries, parse_retries, reply_retries, generator, solver, judge, "
                                  "reviser, reflection"),
    ('[lm.planner]\nmodel = "x/y"\n', "unknown key 'planner' in [lm]"),
    ('[lm.judge]\ntemprature = 0\n', "unknown key 'temprature' in [lm.judge]; allowed: model, api_base, "
                                     "temperature, max_tokens, adapter"),
    ('[lm]\nadapter = "xml"\n', "[lm] adapter must be one of chat, json, json-schema, not 'xml'"),
    ('[lm.judge]\ntemperature = 3\n', "[lm.judge] temperature must be a number from 0 to 2"),
    ('[lm]\nmax_tokens = "many"\n', "[lm] max_tokens must be a whole number of at least 1"),
    ('[lm]\ngenerator = "openai/x"\n', "lm.generator must be a table"),
    ('[prices]\n"openai/x" = { input = 1 }\n', '[prices] "openai/x" needs output'),
    ('[prices]\n"openai/x" = { input = -1, output = 1 }\n', "input must be a number of at least 0"),
    ('[lm\n', "is not valid TOML"),
])
def test_bad_files_are_refused_in_one_line_naming_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as error:
        read_config_file(write(tmp_path, text))
    assert "\n" not in str(error.value) and expected in str(error.value)


@pytest.mark.parametrize("env, expected", [
    ({"SAGE_MAX_TOKENS": "lots"}, "SAGE_MAX_TOKENS='lots' is not a whole number"),
    ({"SAGE_JUDGE_TEMPERATURE": "hot"}, "SAGE_JUDGE_TEMPERATURE='hot' is not a number"),
    ({"SAGE_LM_RETRIES": "-1"}, "SAGE_LM_RETRIES must be a whole number of at least 0"),
])
def test_bad_environment_values_are_refused_in_one_line(env, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        from_environment(env)


def test_empty_and_foreign_environment_variables_are_ignored():
    layer = from_environment({"SAGE_LM": "", "SAGE_ROOT": "/opt/sage", "SAGE_JUDGE_LM": "  "})
    assert layer == Layer()


def test_prices_come_from_the_file(tmp_path):
    settings = load_settings(write(tmp_path, '[prices]\n"openai/x" = { input = 0.5, output = 1.5 }\n'), {},
                             Layer())
    price = settings.prices["openai/x"]
    assert (price.input, price.output, price.source) == (0.5, 1.5, "config")


# ------------------------------------------------------------------------------------------- the CLI

def test_cli_refuses_a_key_in_the_config_file(workdir):
    path = write(workdir, '[lm]\nmodel = "openai/x"\napi_key = "sk-never-read"\n')
    result = invoke("generate", "--config", path, "--no-track")
    assert_one_line_error(result, "keys come from the environment only")
    assert "sk-never-read" not in result.output


def test_cli_refuses_unknown_keys_and_names_the_allowed_ones(workdir):
    result = invoke("generate", "--config", write(workdir, "[lm.judge]\ntemp = 0\n"), "--no-track")
    assert_one_line_error(result, "unknown key 'temp' in [lm.judge]; allowed: model, api_base, temperature")


def test_cli_refuses_a_missing_config_file_and_a_bad_variable(workdir, monkeypatch):
    assert_one_line_error(invoke("generate", "--config", "nope.toml", "--no-track"), "nope.toml does not exist")
    monkeypatch.setenv("SAGE_MAX_TOKENS", "x")
    assert_one_line_error(invoke("generate", "--no-track"), "SAGE_MAX_TOKENS='x' is not a whole number")


def test_cli_options_environment_and_file_reach_the_run_config(workdir, monkeypatch):
    """What generate is handed: the models and LM settings per role, resolved in precedence order."""
    seen = {}

    def capture(config, **kwargs):
        seen.update(config=config, kwargs=kwargs)
        raise LMUnreachableError("captured")

    monkeypatch.setattr(cli, "generate", capture)
    monkeypatch.setenv("SAGE_CONFIG", str(write(workdir, FILE)))
    monkeypatch.setenv("SAGE_SOLVER_TEMPERATURE", "0.7")
    result = invoke("generate", "--judge-lm", "openai/option-judge", "--max-tokens", "512", "--no-track")
    assert_one_line_error(result, "captured")
    config: GenerateConfig = seen["config"]
    assert config.lms == {"generator": "openai/from-file", "solver": "openai/from-file",
                          "judge": "openai/option-judge", "reviser": "openai/from-file"}
    assert config.lm_options == {"seed": 7, "max_tokens": 512}  # --max-tokens beats the file's 1000
    assert config.role_options == {"solver": {"temperature": 0.7}, "judge": {"temperature": 0.2}}
    lms = RoleLMs.from_specs(config.lms, role_options=config.role_options, **config.lm_options).lms
    assert [lms[role].kwargs["temperature"] for role in ROLES] == [1.0, 0.7, 0.2, 1.0]
    assert {lms[role].kwargs["max_tokens"] for role in ROLES} == {512}


def test_per_role_settings_reach_config_json_without_the_endpoint(workdir):
    """Settings per role are part of the run's settings (a change is a different run); an endpoint, which may
    carry credentials, is only said to be set. The offline LM ignores them all."""
    path = write(workdir, '[lm.judge]\ntemperature = 0.1\napi_base = "http://10.0.0.1/v1?api_key=secret"\n')
    result = invoke("generate", "--config", path, "--seeds", "1", "--k", "1", "--rounds", "0", "--out", "run",
                    "--no-track")
    assert result.exit_code == 0, result.output
    saved = (workdir / "run" / "config.json").read_text()
    assert json.loads(saved)["role_options"] == {"judge": {"temperature": 0.1, "api_base": "<set>"}}
    assert "secret" not in saved and "10.0.0.1" not in saved
    assert not any("secret" in path.read_text(errors="ignore") for path in (workdir / "run").iterdir())


def test_breaker_limits_come_from_options_then_environment_then_file(tmp_path):
    from sage_dspy.breaker import BreakerLimits
    from sage_dspy.cli.options import breaker_limits

    path = tmp_path / "sage.toml"
    path.write_text("[breaker]\nin_a_row = 3\nrate = 0.25\nwindow = 40\n")
    env = {"SAGE_BREAKER_RATE": "0.75"}
    settings = load_settings(path, env, Layer(breaker={"window": 10}))
    assert breaker_limits(settings) == BreakerLimits(in_a_row=3, rate=0.75, window=10)
    assert breaker_limits(load_settings()) == BreakerLimits()  # the defaults: 5 in a row, 50% of 20
