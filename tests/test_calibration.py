"""The judge's calibration items (method/calibration.py) and the run's check before any seed (runs/preflight.py),
with the offline LM and with scripted judges."""

import dspy
import pytest
from dspy.utils.exceptions import LMError

from sage_dspy.lm.roles import RoleLMs, offline_lm
from sage_dspy.method.calibration import JUDGE_CALIBRATION, calibrate_judge
from sage_dspy.runs.preflight import WEAK_JUDGE, WeakJudgeError, check_judge
from test_loop import scripted


@pytest.fixture(autouse=True)
def strict_chat_adapter():
    with dspy.context(adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
        yield


def test_the_items_cover_equal_different_and_alias():
    assert {item.kind for item in JUDGE_CALIBRATION} == {"equal", "different", "alias"}
    assert any(not item.correct for item in JUDGE_CALIBRATION) and any(item.correct for item in JUDGE_CALIBRATION)


def test_the_offline_judge_passes_every_item_through_the_real_signature():
    with dspy.context(lm=offline_lm()):
        calibration = calibrate_judge()
    assert calibration.passed and calibration.summary() == f"{len(JUDGE_CALIBRATION)} of 6 calibration items right"


def test_a_judge_that_says_correct_to_everything_fails_the_different_items():
    lm, engine = scripted("judge", [{"is_correct": True}] * len(JUDGE_CALIBRATION))
    with dspy.context(lm=lm):
        calibration = calibrate_judge()
    assert len(engine.calls) == len(JUDGE_CALIBRATION)  # every item asked, the matching ones included
    assert [o.item.kind for o in calibration.failed] == ["different"] * 3
    assert calibration.to_dict()["right"] == 3 and not calibration.passed
    assert "'1790' for '1851' (different): said correct" in calibration.summary()


def test_an_unparseable_reply_fails_its_item_and_a_service_failure_raises():
    lm, _ = scripted("judge", [{"verdict": "yes"}] + [{"is_correct": item.correct} for item in JUDGE_CALIBRATION[1:]])
    with dspy.context(lm=lm):
        calibration = calibrate_judge()
    [unparsed] = calibration.failed
    assert unparsed.said is None and unparsed.error.startswith("AdapterParseError")
    assert "said an unparseable reply" in calibration.summary()
    lm, _ = scripted("judge")  # no reply left: the engine raises, which is no verdict on the judge
    with dspy.context(lm=lm), pytest.raises(LMError, match="no scripted reply left"):
        calibrate_judge()


def test_a_weak_judge_stops_the_run_unless_the_user_insists():
    def yes_man() -> RoleLMs:
        lm, _ = scripted("judge", [{"is_correct": True}] * len(JUDGE_CALIBRATION))
        return RoleLMs({"judge": lm})

    with pytest.raises(WeakJudgeError, match=r"the judge LM 'scripted/judge' got 3 of 6 calibration items right .*"
                                             r"pass a stronger --judge-lm, or --allow-weak-judge to run anyway"):
        check_judge(yes_man())
    with pytest.warns(UserWarning, match=WEAK_JUDGE):
        outcome = check_judge(yes_man(), allow_weak_judge=True)
    assert outcome["model"] == "scripted/judge" and outcome["passed"] is False and len(outcome["wrong"]) == 3


def test_an_offline_run_records_its_passed_calibration(workdir, tiny_corpus_file):
    import json

    from cli_helpers import invoke

    result = invoke("generate", "--corpus", tiny_corpus_file, "--seeds", 1, "--out", workdir / "run", "--no-track")
    assert result.exit_code == 0, result.output
    calibration = json.loads((workdir / "run" / "summary.json").read_text())["judge_calibration"]
    assert calibration == {"model": "offline/sage-rules-v1", "passed": True, "right": 6, "items": 6, "wrong": []}
    assert "WEAK JUDGE" not in result.output and "the judge is" not in result.output
