"""Execution feedback without any LM: verdicts, feedback text, keep rules, dedup, and the report's arithmetic."""

import pytest

from sage_dspy.method.feedback import (MIN_KEPT_SEARCHES, NO_GENERATOR_SEARCH, UNGROUNDED, Attempt, Grounding,
                                      Verdict, cited_grounding, drop_reason, feedback_text, passage_stating,
                                      verdict_for)
from sage_dspy.search.passages import Passage
from sage_dspy.runs.records import mark_kept
from sage_dspy.runs.summary import summarize
from sage_dspy.method.trajectory import Step


def attempts(*specs) -> list[Attempt]:
    """("ans", searches, correct) tuples -> attempts."""
    return [Attempt(answer, searches, correct) for answer, searches, correct in specs]


# ---------------------------------------------------------------------------------------------- verdict_for

@pytest.mark.parametrize("specs, target, correct, searches, avg, kind", [
    # pass@K: one correct attempt is enough
    ([("a", 3, True)], 2, True, 3, 1.0, "accepted"),
    ([("x", 1, False), ("a", 4, True), ("y", 2, False), ("z", 5, False)], 3, True, 4, 0.25, "accepted"),
    # difficulty is the fewest searches among CORRECT attempts (the wrong 1-search attempt does not count)
    ([("x", 1, False), ("a", 5, True), ("a", 3, True)], 3, True, 3, 2 / 3, "accepted"),
    ([("a", 2, True), ("a", 4, True)], 3, True, 2, 1.0, "too_easy"),
    # accepted iff correct and searches >= target: equality is enough
    ([("a", 2, True)], 2, True, 2, 1.0, "accepted"),
    ([("a", 1, True)], 2, True, 1, 1.0, "too_easy"),
    ([("a", 0, True)], 1, True, 0, 1.0, "too_easy"),
    # no correct attempt: incorrect, no difficulty, however many searches were made
    ([("x", 9, False), ("y", 7, False)], 2, False, None, 0.0, "incorrect"),
    ([], 2, False, None, 0.0, "incorrect"),
])
def test_verdict_for(specs, target, correct, searches, avg, kind):
    verdict = verdict_for(attempts(*specs), target)
    assert verdict.target == target
    assert verdict.attempts == len(specs)
    assert verdict.correct is correct
    assert verdict.searches == searches
    assert verdict.avg_at_k == pytest.approx(avg)
    assert verdict.kind == kind
    assert verdict.accepted is (kind == "accepted")


@pytest.mark.parametrize("correct, searches, target, accepted", [
    (True, 3, 3, True), (True, 4, 3, True), (True, 2, 3, False), (False, None, 1, False),
    (True, None, 1, False),  # inconsistent but must never be accepted
])
def test_accepted_needs_correct_and_at_least_target(correct, searches, target, accepted):
    verdict = Verdict(target=target, correct=correct, searches=searches, avg_at_k=0.5, attempts=2)
    assert verdict.accepted is accepted


# ---------------------------------------------------------------------------------------------- feedback_text

def test_feedback_text_too_easy_names_searches_target_and_shortest_queries():
    shortcut = Attempt("1851", 1, True, [Step("broad", "search", "founded in studied at", "..."),
                                         Step("done", "finish", "", "Completed.")])
    long_way = Attempt("1851", 3, True, [Step("t", "search", f"q{i}", "...") for i in range(3)])
    found = [long_way, shortcut]
    text = feedback_text(verdict_for(found, 3), found, "1851")
    assert text.startswith("Too easy")
    assert "1 search(es)" in text and "target is 3" in text
    assert "'founded in studied at'" in text  # the shortest correct attempt's query, not the long one's
    assert "q0" not in text
    assert "add 2 necessary step(s)" in text


def test_feedback_text_incorrect_lists_every_answer_and_the_gold():
    tried = [Attempt("1790", 1, False), Attempt("", 0, False, error="TimeoutError: slow"), Attempt("", 2, False)]
    text = feedback_text(verdict_for(tried, 2), tried, "1851")
    assert text.startswith("Incorrect")
    assert "none of the 3 attempts" in text and "'1851'" in text
    assert "'1790'" in text and "'TimeoutError: slow'" in text and "'no answer'" in text


@pytest.mark.parametrize("specs, target", [
    ([("a", 1, True)], 2), ([("x", 1, False)], 2), ([("a", 2, True)], 2),
])
def test_feedback_text_differs_by_kind(specs, target):
    found = attempts(*specs)
    verdict = verdict_for(found, target)
    text = feedback_text(verdict, found, "a")
    prefix = {"too_easy": "Too easy", "incorrect": "Incorrect", "accepted": "Accepted"}[verdict.kind]
    assert text.startswith(prefix)


# ---------------------------------------------------------------------------------------------- drop_reason

@pytest.mark.parametrize("specs, target, reason", [
    ([("x", 3, False)], 2, "incorrect"),
    ([("a", 1, True)], 2, "too easy"),
    ([("a", 2, True)], 3, "too easy"),
    # accepted at target 1 with one search is still dropped: the paper keeps only >= 2 searches
    ([("a", 1, True)], 1, f"fewer than {MIN_KEPT_SEARCHES} searches"),
    ([("a", 0, True)], 0, f"fewer than {MIN_KEPT_SEARCHES} searches"),
    ([("a", 2, True)], 1, None),
    ([("a", 2, True)], 2, None),
    ([("x", 1, False), ("a", 5, True)], 4, None),
])
def test_drop_reason(specs, target, reason):
    assert drop_reason(verdict_for(attempts(*specs), target)) == reason


# ---------------------------------------------------------------------------------------------- grounding

ADA = Passage("p-ada", "Ada Marlowe", "Ada Marlowe studied at Corvel Institute, which has 3,400 students.")
ANNVILLE = Passage("p-ann", "Annville", "Annville is a town founded in 1851.")


@pytest.mark.parametrize("answer, aliases, found", [
    ("Corvel Institute", (), ("p-ada", "contained")),
    ("the corvel institute.", (), ("p-ada", "contained")),  # normalised both sides
    ("3400", (), ("p-ada", "contained")),  # 3,400 in the passage
    ("Ada Marlowe", (), ("p-ada", "contained")),  # a title counts
    ("1851", (), ("p-ann", "contained")),
    ("Ann", (), ("", "none")),  # whole words only: "Annville" does not state "Ann"
    ("Corvel", (), ("p-ada", "contained")),
    ("Ms Marlowe", ("Ada Marlowe",), ("p-ada", "alias")),
    ("[#description of question] #outputJSON (", (), ("", "none")),  # the kept garbage of issue 23
    ("", (), ("", "none")),
])
def test_passage_stating_is_a_whole_word_normalised_match(answer, aliases, found):
    assert passage_stating(answer, [ANNVILLE, ADA], aliases) == found


@pytest.mark.parametrize("cited, passage_id, method", [
    ("p-ada", "p-ada", "lm"),
    ("id: p-ada", "p-ada", "lm"),
    ("`p-ann`", "p-ann", "lm"),
    ("p-elsewhere", "", "none"),  # a passage nobody retrieved is no evidence
    ("none", "", "none"),
    ("", "", "none"),
])
def test_a_citation_counts_only_for_a_retrieved_passage(cited, passage_id, method):
    assert cited_grounding(cited, [ADA, ANNVILLE], generator_passages=2) == Grounding(passage_id, method, 2)


ACCEPTED = [("a", 3, True)]


@pytest.mark.parametrize("specs, grounding, reason", [
    (ACCEPTED, None, None),  # not checked: verdicts alone
    (ACCEPTED, Grounding("p-ada", "contained", 2), None),
    (ACCEPTED, Grounding("p-ada", "lm", 1), None),
    (ACCEPTED, Grounding("", "none", 0), NO_GENERATOR_SEARCH),  # issue 23's w099: every search an error
    (ACCEPTED, Grounding("p-ada", "contained", 0), NO_GENERATOR_SEARCH),  # the solver's passages are not enough
    (ACCEPTED, Grounding("", "none", 3), UNGROUNDED),
    ([("x", 3, False)], Grounding("", "none", 0), "incorrect"),  # the verdict's reason comes first
])
def test_drop_reason_keeps_only_grounded_pairs_of_a_searching_generator(specs, grounding, reason):
    assert drop_reason(verdict_for(attempts(*specs), 2), grounding) == reason


# ---------------------------------------------------------------------------------------------- mark_kept

def record(question="q?", *, target=2, error="", drop="", correct=True, accepted=True, searches=2, avg=1.0,
           kept=False) -> dict:
    return {"question": question, "target": target, "error": error, "drop_reason": drop, "correct": correct,
            "accepted": accepted, "searches": searches, "avg_at_k": avg, "kept": kept}


def test_mark_kept_removes_normalised_duplicates_keeping_the_first():
    records = [
        record("Who designed the Harbor Bridge?"),
        record("who designed  harbor bridge"),        # same after lowercase, article and punctuation removal
        record("Who designed the Oakley Tower?"),
        record("WHO DESIGNED THE HARBOR BRIDGE ?!"),
    ]
    mark_kept(records)
    assert [r["kept"] for r in records] == [True, False, True, False]
    assert [r["drop_reason"] for r in records] == ["", "duplicate question", "", "duplicate question"]


def test_mark_kept_skips_dropped_and_failed_records_and_they_do_not_claim_the_question():
    records = [
        record("Q one?", drop="too easy", kept=True),
        record("Q one?", error="RuntimeError: boom", drop="error", kept=True),
        record("Q one?"),  # the first one that may be kept is kept, although its question came earlier
        record("Q two?", drop="incorrect"),
    ]
    mark_kept(records)
    assert [r["kept"] for r in records] == [False, False, True, False]
    assert [r["drop_reason"] for r in records] == ["too easy", "error", "", "incorrect"]


# ---------------------------------------------------------------------------------------------- summarize

def test_summarize_overall_and_per_target_arithmetic():
    records = [
        # target 2: 3 done + 1 failed; 2 correct (searches 2 and 4), 1 accepted
        record("a", target=2, correct=True, accepted=True, searches=2, avg=0.5, kept=True),
        record("b", target=2, correct=True, accepted=False, searches=4, avg=1.0),
        record("c", target=2, correct=False, accepted=False, searches=-1, avg=0.0),
        record("d", target=2, error="ValueError: x", correct=False, accepted=False, searches=-1, avg=0.0),
        # target 3: 1 done, correct and accepted with 5 searches
        record("e", target=3, correct=True, accepted=True, searches=5, avg=0.25, kept=True),
    ]
    summary = summarize(records)
    assert list(summary["per_target"]) == ["2", "3"]
    two, three, overall = summary["per_target"]["2"], summary["per_target"]["3"], summary["overall"]

    assert two["seeds"] == 4 and two["failed"] == 1
    assert two["correct_pct"] == pytest.approx(100 * 2 / 3)  # the failed row is not in the denominator
    assert two["accepted_pct"] == pytest.approx(100 * 1 / 3)
    assert two["avg_at_k"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert two["mean_searches"] == pytest.approx((2 + 4) / 2)  # correct pairs only: the -1 never enters
    assert two["kept"] == 1

    assert three == {"seeds": 1, "failed": 0, "correct_pct": 100.0, "accepted_pct": 100.0,
                     "avg_at_k": pytest.approx(0.25), "mean_searches": 5.0, "kept": 1,
                     "lm_calls_per_accepted": 0.0, "tokens_per_accepted": 0.0}

    assert overall["seeds"] == 5 and overall["failed"] == 1
    assert overall["correct_pct"] == pytest.approx(100 * 3 / 4)
    assert overall["accepted_pct"] == pytest.approx(100 * 2 / 4)
    assert overall["avg_at_k"] == pytest.approx((0.5 + 1.0 + 0.0 + 0.25) / 4)
    assert overall["mean_searches"] == pytest.approx((2 + 4 + 5) / 3)
    assert overall["kept"] == 2


def test_summarize_targets_sort_numerically_and_all_failed_rows_give_zeros():
    records = [record("x", target=10, error="boom", correct=False, accepted=False, searches=-1, avg=0.0),
               record("y", target=2, correct=False, accepted=False, searches=-1, avg=0.0)]
    summary = summarize(records)
    assert list(summary["per_target"]) == ["2", "10"]
    assert summary["per_target"]["10"] == {"seeds": 1, "failed": 1, "correct_pct": 0.0, "accepted_pct": 0.0,
                                           "avg_at_k": 0.0, "mean_searches": 0.0, "kept": 0,
                                           "lm_calls_per_accepted": 0.0, "tokens_per_accepted": 0.0}
    assert summary["per_target"]["2"]["mean_searches"] == 0.0  # no correct pair: no difficulty, not -1


def test_cost_per_accepted_pair_charges_every_seed_to_the_accepted_ones():
    spent = [record("a", target=2, correct=True, accepted=True, searches=2, avg=1.0),
             record("b", target=2, correct=False, accepted=False, searches=-1, avg=0.0),
             record("c", target=3, error="boom", correct=False, accepted=False, searches=-1, avg=0.0)]
    for row, calls, prompt, completion in zip(spent, (10, 30, 5), (100, 300, 50), (1, 3, 2)):
        row.update(lm_calls=calls, prompt_tokens=prompt, completion_tokens=completion)
    overall = summarize(spent)["overall"]
    assert overall["lm_calls_per_accepted"] == 45.0  # (10 + 30 + 5) calls, one accepted pair
    assert overall["tokens_per_accepted"] == 456.0


def test_cost_per_accepted_pair_is_zero_without_accepted_pairs():
    rejected = record("b", target=2, correct=False, accepted=False, searches=-1, avg=0.0)
    rejected.update(lm_calls=12, prompt_tokens=10, completion_tokens=1)
    assert summarize([rejected])["overall"]["lm_calls_per_accepted"] == 0.0


def test_failures_are_counted_by_kind_for_seeds_and_attempts():
    failed_seed = record("x", target=2, error="LMServerError: 500 from provider", correct=False, accepted=False,
                         searches=-1, avg=0.0)
    noisy = record("y", target=2, correct=True, accepted=True, searches=2, avg=0.5)
    noisy["rounds"] = [{"attempts": [{"error": "LMRateLimitError: 429"}, {"error": ""},
                                     {"error": "judge failed: AdapterParseError: no fields"},
                                     {"error": "LMRateLimitError: 429 again"}]}]
    assert summarize([failed_seed, noisy])["failures"] == {  # records from before error_kind: read by message
        "seeds": {"LMServerError": 1},
        "attempts": {"LMRateLimitError": 2, "judge failed: AdapterParseError": 1}, "parse_failures": {},
        "searches": {}}


def test_failures_are_counted_by_their_stored_kind_and_parse_failures_by_role():
    failed_seed = record("x", target=2, error="AdapterParseError: Adapter ChatAdapter failed", correct=False,
                         accepted=False, searches=-1, avg=0.0)
    failed_seed.update(error_kind="AdapterParseError", failed_in="generator")
    failed_seed["lm_usage"] = [{"role": "generator", "model": "m", "lm_calls": 3, "parse_failures": 3}]
    noisy = record("y", target=2, correct=True, accepted=True, searches=2, avg=0.5)
    noisy["rounds"] = [{"attempts": [
        {"error": "a message in no known shape", "error_kind": "LMProviderError", "failed_in": "solver"},
        {"error": "", "error_kind": "", "failed_in": ""},
        {"error": "judge failed: anything", "error_kind": "AdapterParseError", "failed_in": "judge"}]}]
    noisy["lm_usage"] = [{"role": "solver", "model": "m", "lm_calls": 9, "parse_failures": 1},
                         {"role": "judge", "model": "m", "lm_calls": 2, "parse_failures": 0}]
    assert summarize([failed_seed, noisy])["failures"] == {
        "seeds": {"AdapterParseError": 1},
        "attempts": {"LMProviderError": 1, "judge failed: AdapterParseError": 1},
        "parse_failures": {"generator": 3, "solver": 1}, "searches": {}}
