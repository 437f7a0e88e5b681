"""LMs per role: the offline LM by default, real ones with the options users pass, nothing secret logged."""

import pytest

from sage_dspy.lm.roles import DEFAULT_TEMPERATURES, LMConfigError, RoleLMs, build_lm, loggable_options
from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.runs.config import GenerateConfig


def test_real_lm_options_reach_dspy_lm():
    lm = build_lm("openai/some-model", "solver", api_base="http://127.0.0.1:9/v1", seed=0, timeout=30,
                  num_retries=1)
    assert lm.model == "openai/some-model"
    assert lm.kwargs["temperature"] == DEFAULT_TEMPERATURES["solver"] == 1.0
    assert lm.kwargs["seed"] == 0 and lm.num_retries == 1


def test_unset_options_are_left_to_dspy_defaults():
    lm = build_lm("openai/some-model", "judge")
    assert lm.kwargs["temperature"] == 0.0 and "seed" not in lm.kwargs


def test_offline_roles_share_one_seeded_offline_lm():
    lms = RoleLMs.from_specs({"generator": "offline", "solver": "offline"})
    assert lms.lms["generator"] is lms.lms["solver"]
    assert lms.ids() == {"generator": MODEL_NAME, "solver": MODEL_NAME}
    assert lms.lms["solver"].kwargs["seed"] == 0  # rollouts read seed + k


@pytest.mark.parametrize("spec", ["gpt4", "/model", "openai/"])
def test_a_model_string_without_provider_is_refused_in_one_line(spec):
    with pytest.raises(LMConfigError) as error:
        build_lm(spec, "generator")
    assert "\n" not in str(error.value) and "provider/model" in str(error.value)


def test_unknown_roles_are_refused():
    with pytest.raises(LMConfigError, match="unknown role"):
        RoleLMs.from_specs({"planner": "offline"})


def test_endpoints_never_reach_config_files():
    options = {"api_base": "http://user:pass@10.0.0.1/v1", "seed": 3}
    assert loggable_options(options) == {"api_base": "<set>", "seed": 3}
    assert GenerateConfig(lm_options=options).to_dict()["lm_options"] == {"api_base": "<set>", "seed": 3}
