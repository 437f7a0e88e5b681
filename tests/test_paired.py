"""The paired statistics of `evaluate --programs` (runs/paired.py): hand computations on fixed outcomes, and an
honesty check: two copies of one program, compared over many simulated repetitions, have 0 inside the 95%
interval about 95% of the time."""

import math
import random

import pytest

from sage_dspy.runs.paired import (BOOTSTRAP_RESAMPLES, agresti_min, paired_bootstrap, paired_rate, seeds_to_detect,
                                   verdict)
from sage_dspy.runs.program_comparison import compare_pair, mean_searches, paired_records


def outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[bool], list[bool]]:
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


# Agresti-Min by hand: cells n + 2, p_a = (only_a + .5) / cells, p_b likewise, centre p_b - p_a,
# half = 1.96 * sqrt((p_a + p_b - centre^2) / cells), clipped to [-1, 1]
@pytest.mark.parametrize("cells, difference, low, high", [
    # 10 seeds, A alone on 1, B alone on 5: p_a = 1.5/12 = .125, p_b = 5.5/12 = .458333, centre .333333,
    # var = (.583333 - .111111) / 12 = .0393519, half = 1.959964 * .198373 = .388807
    ((2, 1, 5, 2), 40.0, -5.547, 72.214),
    # all 40 seeds tied (20 both, 20 neither): p_a = p_b = .5/42, centre 0, var = (1/42) / 42, half = .046666
    ((20, 0, 0, 20), 0.0, -4.667, 4.667),
    # all tied, every seed accepted by both: the same interval (only discordant seeds inform it)
    ((40, 0, 0, 0), 0.0, -4.667, 4.667),
    # all 40 different, B wins each: p_a = .5/42, p_b = 40.5/42, centre .952381,
    # var = (41/42 - .907029) / 42 = .00164670, half = .079535; the top clipped to +100
    ((0, 0, 40, 0), 100.0, 87.285, 100.0),
    # all different, A wins each: the mirror image
    ((0, 40, 0, 0), -100.0, -100.0, -87.285),
])
def test_paired_rate_matches_a_hand_computation(cells, difference, low, high):
    result = paired_rate(*outcomes(*cells))
    assert result.difference == pytest.approx(difference)
    assert (result.low, result.high) == (pytest.approx(low, abs=1e-3), pytest.approx(high, abs=1e-3))
    assert result.seeds == sum(cells)
    assert result.real == (low > 0 or high < 0)


def test_agresti_min_is_symmetric_in_its_sides():
    low, high = agresti_min(3, 9, 30)
    assert agresti_min(9, 3, 30) == (pytest.approx(-high), pytest.approx(-low))


@pytest.mark.parametrize("only_a, only_b, n, needed", [
    # Connor (1987): n = ((1.96 sqrt(psi) + 0.8416 sqrt(psi - d^2)) / d)^2, d = .1, psi = (8 + 1) / 42 = .214286
    # (1.959964 * .462910 + .841621 * .451335) / .1 = (.907287 + .379852) / .1 = 12.87139; squared 165.67
    (3, 5, 40, 166),
    # no disagreement seen: psi floored at d = .1, sqrt(.09) = .3: (.619795 + .252486) / .1 = 8.72281 -> 76.09
    (0, 0, 40, 77),
])
def test_seeds_to_detect_ten_points_by_hand(only_a, only_b, n, needed):
    assert seeds_to_detect(only_a, only_b, n) == needed


def test_verdicts_read_as_sentences():
    real = paired_rate(*outcomes(10, 0, 12, 18))
    assert verdict("baseline", "gepa-2", real, 0, 12) == \
        f"gepa-2 accepts more pairs than baseline (+30 points, 95% CI {real.low:+.0f} to {real.high:+.0f})"
    assert verdict("gepa-2", "baseline", paired_rate(*outcomes(10, 12, 0, 18)), 12, 0).startswith(
        "gepa-2 accepts more pairs than baseline (-30 points")
    tied = paired_rate(*outcomes(20, 0, 0, 20))
    assert verdict("A", "B", tied, 0, 0) == ("no difference detectable with 40 seeds (+0 points, 95% CI -5 to +5); "
                                             "about 77 seeds would detect 10 points")


def test_verdict_on_many_seeds_says_a_ten_point_difference_would_have_shown():
    big = paired_rate(*outcomes(200, 10, 11, 179))
    assert "400 seeds would likely have shown a 10-point difference" in verdict("A", "B", big, 10, 11)


def test_paired_bootstrap_is_deterministic_and_brackets_the_difference():
    a = [{"correct": True, "searches": s} for s in (2, 3, 3, 4, 2, 5, 3, 2)]
    b = [{"correct": True, "searches": s + 1} for s in (2, 3, 3, 4, 2, 5, 3, 2)]
    mean = lambda records: sum(r["searches"] for r in records) / len(records)  # noqa: E731
    first, again = paired_bootstrap(a, b, mean, "mean_searches"), paired_bootstrap(a, b, mean, "mean_searches")
    assert first == again
    # every seed is exactly one search harder on B: each resample's difference is exactly +1
    assert (first.difference, first.low, first.high) == (pytest.approx(1.0),) * 3
    assert paired_bootstrap(a, b, lambda records: None, "mean_searches") is None
    assert BOOTSTRAP_RESAMPLES >= 1000


def test_unpaired_inputs_are_refused():
    with pytest.raises(ValueError, match="same seeds"):
        paired_rate([True], [True, False])


# Per-seed chance of acceptance, as recorded: each of the 40 seeds of an offline `sage evaluate --programs
# baseline,<compiled> --seeds 40 --k 4 --rounds 1` (bundled corpus, targets 3-7, random seed 0) gets the share of
# the seeds of its target that the baseline run accepted (S=3 .9, S=4 .857, S=5 .625, S=6 .167, S=7 .333), in
# the run's seed order. A program run twice draws each seed's outcome afresh with these chances.
RECORDED_CHANCES = (0.857, 0.167, 0.333, 0.9, 0.9, 0.167, 0.9, 0.167, 0.857, 0.625, 0.9, 0.333, 0.857, 0.333, 0.9,
                    0.625, 0.167, 0.625, 0.625, 0.9, 0.625, 0.857, 0.333, 0.625, 0.9, 0.167, 0.333, 0.625, 0.857, 0.9,
                    0.625, 0.9, 0.857, 0.9, 0.333, 0.167, 0.333, 0.333, 0.857, 0.333)


@pytest.mark.parametrize("seeds", [20, 40])
def test_two_copies_of_one_program_have_zero_inside_the_interval_about_95_percent_of_the_time(seeds):
    draw, repetitions, covered = random.Random(25), 4000, 0
    chances = RECORDED_CHANCES[:seeds]
    for _ in range(repetitions):
        a = [draw.random() < p for p in chances]
        b = [draw.random() < p for p in chances]
        result = paired_rate(a, b)
        covered += result.low <= 0 <= result.high
    coverage = covered / repetitions
    # 4000 repetitions: a binomial standard error of 0.35 points around the true coverage
    assert 0.93 <= coverage <= 0.985, coverage


def test_the_bootstrap_of_mean_searches_is_honest_too():
    draw, repetitions, covered = random.Random(7), 200, 0
    def run():
        return [{"correct": draw.random() < p, "searches": draw.choice((2, 3, 3, 4, 5))} for p in RECORDED_CHANCES]

    for _ in range(repetitions):
        result = paired_bootstrap(run(), run(), mean_searches, "mean_searches", seed=draw.randrange(10 ** 6),
                                  resamples=400)
        covered += result.low <= 0 <= result.high
    # 200 repetitions: a standard error of 1.5 points; the percentile bootstrap runs a little short of 95%
    assert 0.89 <= covered / repetitions <= 0.99, covered / repetitions


def record(seed: str, accepted: bool, correct: bool = True, error: str = "", searches: int = 3) -> dict:
    return {"seed_id": seed, "target": 3, "requested_answer_type": "entity", "accepted": accepted,
            "correct": correct, "error": error, "searches": searches, "kept": accepted,
            "lm_usage": [{"lm_calls": 5}]}


def test_seeds_failed_on_either_side_are_left_out_not_counted_as_verdicts():
    a = [record("s1", True), record("s2", False, error="timeout"), record("s3", False), record("s4", True)]
    b = [record("s1", True), record("s2", True), record("s3", True, error="connection refused"), record("s4", False)]
    kept_a, kept_b, left_out = paired_records(a, b)
    assert [r["seed_id"] for r in kept_a] == [r["seed_id"] for r in kept_b] == ["s1", "s4"]
    assert left_out == 2
    pair = compare_pair("A", a, "B", b)
    assert pair["seeds"] == 2 and pair["left_out"] == 2
    accepted, correct, searches, calls = pair["rows"]
    assert (accepted.a, accepted.b, accepted.difference) == (100.0, 50.0, -50.0)
    assert calls.a == pytest.approx(5.0) and calls.b == pytest.approx(10.0)  # 10 calls over 2 and over 1 kept
    assert math.isclose(searches.difference, 0.0)
