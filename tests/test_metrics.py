"""The optimizer's metric (sage_dspy.method.metrics): scores and feedback per verdict kind, on hand-made verdicts,
and the same verdicts the loop computes. No LM except one offline SageLoop run at the end."""

import inspect

import dspy
import pytest

from sage_dspy.method.feedback import Attempt, Grounding, Verdict, drop_reason, verdict_for
from sage_dspy.lm.roles import offline_lm
from sage_dspy.method.loop import Round
from sage_dspy.method.metrics import TOO_EASY_CEILING, UNGROUNDED_FEEDBACK, explain_verdict, sage_metric, score_verdict
from sage_dspy.offline.proposer import ADVICE
from sage_dspy.method.pair import QAPair
from sage_dspy.programs import load_recipe
from sage_dspy.search.tool import SearchTool

QUESTION = 'Start from the passage on "Harbor Bridge". Go to the passage on the name right after "designed by". ' \
           'There, which name comes right after "studied at"?'
TOO_EASY_WORDS, INCORRECT_WORDS = (next(words for words in ADVICE if first in words)
                                   for first in ("too easy", "incorrect"))


def verdict(target, correct, searches, avg=0.5, attempts=4) -> Verdict:
    return Verdict(target=target, correct=correct, searches=searches, avg_at_k=avg, attempts=attempts)


# ------------------------------------------------------------------------------------------ scores

@pytest.mark.parametrize("case, made, expected", [
    ("accepted at the target", verdict(3, True, 3), 1.0),
    ("accepted above the target", verdict(3, True, 6, avg=1.0), 1.0),
    ("accepted, target 1", verdict(1, True, 1, avg=0.25), 1.0),
    ("too easy by one", verdict(4, True, 3), 0.5 * 3 / 4),
    ("too easy, one search of five", verdict(5, True, 1), 0.5 * 1 / 5),
    ("too easy, answered without searching", verdict(3, True, 0), 0.0),
    ("incorrect", verdict(3, False, None, avg=0.0), 0.0),
    ("incorrect, no attempts", verdict(3, False, None, avg=0.0, attempts=0), 0.0),
    ("no verdict", None, 0.0),
])
def test_score_by_verdict(case, made, expected):
    assert score_verdict(made) == pytest.approx(expected)


@pytest.mark.parametrize("target", [2, 3, 5, 7])
def test_too_easy_is_partial_below_half_and_grows_with_searches(target):
    too_easy = [score_verdict(verdict(target, True, s)) for s in range(1, target)]
    assert all(0.0 < score < TOO_EASY_CEILING <= 0.5 for score in too_easy)
    assert too_easy == sorted(too_easy) and len(set(too_easy)) == len(too_easy)  # strictly increasing
    assert score_verdict(verdict(target, True, target)) == 1.0  # the jump at the target
    assert score_verdict(verdict(target, False, None)) == 0.0 < too_easy[0]


@pytest.mark.parametrize("made", [verdict(3, True, 3), verdict(3, True, 5), verdict(4, True, 2),
                                  verdict(2, True, 1), verdict(3, False, None)])
def test_full_score_exactly_when_accepted(made):
    assert (score_verdict(made) == 1.0) == made.accepted
    if drop_reason(made) is None:  # a kept pair always scores full marks
        assert score_verdict(made) == 1.0


# ---------------------------------------------------------------------------------------- feedback

@pytest.mark.parametrize("made, question, starts, contains", [
    (verdict(3, True, 4, avg=0.75), QUESTION, "Accepted:", ["75%", "4 searches", "target 3"]),
    (verdict(4, True, 1), QUESTION, "Too easy:", ["only 1 searches", "target 4", "every hop is necessary"]),
    (verdict(3, False, None, avg=0.0), QUESTION, "Incorrect:", ["searches per attempt: [2, 0]", "unambiguous"]),
    (None, QUESTION, "No usable question", []),
    (verdict(3, True, 3), "", "No usable question", []),  # an empty question never reads as accepted
])
def test_feedback_text_by_kind(made, question, starts, contains):
    attempts = [Attempt("1790", 2, False), Attempt("", 0, False)]
    text = explain_verdict(made, question, attempts)
    assert text.startswith(starts), text
    for piece in contains:
        assert piece in text, (piece, text)
    assert "\n" not in text


def test_feedback_names_the_failure_the_offline_proposer_acts_on():
    """GEPA reflects on this text; the offline proposer picks its advice by these words, so each failure
    kind must trigger its own advice and not the other one."""
    too_easy = explain_verdict(verdict(4, True, 1), QUESTION).lower()
    incorrect = explain_verdict(verdict(3, False, None), QUESTION, [Attempt("x", 1, False)]).lower()
    accepted = explain_verdict(verdict(3, True, 3), QUESTION).lower()
    assert any(w in too_easy for w in TOO_EASY_WORDS) and not any(w in too_easy for w in INCORRECT_WORDS)
    assert any(w in incorrect for w in INCORRECT_WORDS) and not any(w in incorrect for w in TOO_EASY_WORDS)
    assert not any(w in accepted for words in ADVICE for w in words)


# ------------------------------------------------------------------------------------- sage_metric

def prediction_for(attempts: list[Attempt], target: int, question: str = QUESTION) -> dspy.Prediction:
    """What SageLoop.forward returns, built by hand around `verdict_for`."""
    pair = QAPair(question=question, answer="Corvel Institute", answer_type="entity", steps=[],
                  origin="generated")
    made = verdict_for(attempts, target)
    return dspy.Prediction(pair=pair, verdict=made, rounds=[Round(0, pair, attempts, made)])


ATTEMPT_SETS = {
    "accepted": ([Attempt("Corvel Institute", 3, True), Attempt("1790", 1, False)], 3, 1.0),
    "too easy": ([Attempt("Corvel Institute", 1, True), Attempt("Corvel Institute", 3, True)], 3, 0.5 / 3),
    "incorrect": ([Attempt("1790", 1, False), Attempt("", 4, False, error="max turns")], 2, 0.0),
    "no attempts": ([], 2, 0.0),
}


@pytest.mark.parametrize("case", list(ATTEMPT_SETS))
def test_sage_metric_scores_the_loops_verdict(case):
    attempts, target, expected = ATTEMPT_SETS[case]
    prediction = prediction_for(attempts, target)
    example = dspy.Example(seed=None, target_searches=target, answer_type="entity").with_inputs(
        "seed", "target_searches", "answer_type")
    result = sage_metric(example, prediction, None, "generator.propose.react", None)  # GEPA's five arguments
    assert isinstance(result, dspy.Prediction)
    assert result.score == pytest.approx(expected) == score_verdict(verdict_for(attempts, target))
    assert result.feedback == explain_verdict(prediction.verdict, QUESTION, attempts)
    # keyword form, and the three-argument form other optimizers use, agree
    assert sage_metric(example, prediction, trace=None, pred_name=None, pred_trace=None) == result
    assert sage_metric(example, prediction).score == result.score


@pytest.mark.parametrize("grounding, score", [
    (Grounding("p-ada", "contained", 2), 1.0),
    (Grounding("", "none", 2), 0.0),  # an answer no retrieved passage states
    (Grounding("", "none", 0), 0.0),  # a generator that never retrieved a passage
])
def test_an_accepted_pair_generation_would_drop_as_ungrounded_scores_nothing(grounding, score):
    attempts, target, _ = ATTEMPT_SETS["accepted"]
    prediction = prediction_for(attempts, target)
    prediction.grounding = grounding
    result = sage_metric(dspy.Example(target_searches=target), prediction)
    assert result.score == score
    assert (result.feedback == UNGROUNDED_FEEDBACK) == (score == 0.0)


def test_sage_metric_signature_is_the_five_argument_gepa_form():
    assert list(inspect.signature(sage_metric).parameters) == ["example", "prediction", "trace", "pred_name",
                                                                "pred_trace"]


def test_sage_metric_on_an_unusable_prediction_is_zero_with_feedback():
    for prediction in (dspy.Prediction(), dspy.Prediction(pair=None, verdict=None, rounds=[])):
        result = sage_metric(dspy.Example(), prediction)
        assert result.score == 0.0 and result.feedback.startswith("No usable question")
    empty = prediction_for([Attempt("Corvel Institute", 3, True)], 3, question="")
    assert sage_metric(dspy.Example(), empty).feedback.startswith("No usable question")


def test_incorrect_feedback_reads_the_last_rounds_attempts():
    first, last = [Attempt("x", 1, False)], [Attempt("y", 5, False), Attempt("z", 6, False)]
    pair = QAPair(question=QUESTION, answer="a", answer_type="entity", steps=[], origin="generated")
    rounds = [Round(0, pair, first, verdict_for(first, 3)), Round(1, pair, last, verdict_for(last, 3))]
    result = sage_metric(dspy.Example(), dspy.Prediction(pair=pair, verdict=rounds[-1].verdict, rounds=rounds))
    assert "[5, 6]" in result.feedback and "[1]" not in result.feedback


@pytest.mark.parametrize("seed, target, answer_type, kinds, feedback", [
    ("p-bridge", 3, "date", ["accepted"], "Accepted:"),
    ("p-bridge", 5, "number", ["too_easy", "too_easy"], "Too easy:"),
    ("p-ferry", 2, "entity", ["too_easy", "accepted"], "Accepted:"),
    # River Lune names no other passage: the generator writes no question, the metric says so
    ("p-river", 2, "entity", ["incorrect", "incorrect"], "No usable question"),
])
def test_metric_agrees_with_the_real_loop(tiny_index, seed, target, answer_type, kinds, feedback):
    """The verdict the offline SageLoop returns is what the metric scores: same function, same attempts."""
    program = load_recipe("sage").build(SearchTool(tiny_index), k=2, max_rounds=1)
    with dspy.context(lm=offline_lm()):
        prediction = program(seed=tiny_index.get(seed), target_searches=target, answer_type=answer_type)
    assert [r.verdict.kind for r in prediction.rounds] == kinds
    last = prediction.rounds[-1]
    assert prediction.verdict == last.verdict == verdict_for(last.attempts, target)
    result = sage_metric(dspy.Example(), prediction)
    assert result.score == score_verdict(verdict_for(last.attempts, target))
    assert result.feedback == explain_verdict(last.verdict, prediction.pair.question, last.attempts)
    assert result.feedback.startswith(feedback)
    assert (result.score == 1.0) == (kinds[-1] == "accepted")
