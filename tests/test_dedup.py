"""Near-duplicate removal and the MinHash under it: the first of a group stays, every removal names the
kept pair, the rule and the similarity, the same input always gives the same output."""

import random
import subprocess
import sys

import numpy as np
import pytest

from sage_dspy.dataset.dedup import (NEAR_QUESTION, SAME_ANSWER_AND_SUPPORT, remove_near_duplicates)
from sage_dspy.dataset.minhash import LSHIndex, MinHasher, jaccard, rows_per_band, shingles, words


def pair(question: str, answer: str = "", support=(), seed: str = "") -> dict:
    return {"seed_id": seed or question[:12], "question": question, "answer": answer,
            "supporting_ids": list(support), "kept": True}


BRIDGE = "Which engineer designed the steel arch bridge that replaced the Lune Ferry across the estuary?"
BRIDGE_REWORDED = "Which engineer designed the steel arch bridge that replaced Lune Ferry across the wide estuary?"
RECTOR = "Who was the first rector of the technical university where the designer of Harbor Bridge studied?"
FOUNDED = "In which year was the institute founded where the engineer of the Harbor Bridge studied?"


def test_a_reworded_question_goes_and_names_the_first_one():
    records = [pair(BRIDGE, "Ada Marlowe", ["p-bridge"]), pair(RECTOR, "Tobias Wren", ["p-corvel"]),
               pair(BRIDGE_REWORDED, "Ada Marlowe", ["p-ferry"])]
    kept, removals = remove_near_duplicates(records)
    assert kept == records[:2]
    (removal,) = removals
    assert (removal.removed_index, removal.kept_index, removal.rule) == (2, 0, NEAR_QUESTION)
    assert removal.removed is records[2] and removal.kept is records[0]
    assert removal.similarity == pytest.approx(jaccard(shingles(words(BRIDGE)), shingles(words(BRIDGE_REWORDED))))
    assert 0.7 <= removal.similarity < 1
    assert removal.to_dict()["duplicate_of"]["question"] == BRIDGE


def test_same_answer_through_same_passages_goes_whatever_the_question():
    records = [pair(RECTOR, "Tobias Wren", ["p-corvel", "p-ada"]),
               pair(FOUNDED, "the Tobias  Wren", ["p-ada", "p-corvel"]),  # same answer once normalised, same set
               pair(FOUNDED.replace("studied", "trained"), "Tobias Wren", ["p-corvel"])]
    kept, removals = remove_near_duplicates(records)
    assert [(r.removed_index, r.kept_index, r.rule, r.similarity) for r in removals] == \
        [(1, 0, SAME_ANSWER_AND_SUPPORT, 1.0)]
    # the third shares the answer but not the passages, and its question resembles only the second's, which
    # went: nothing kept resembles it, so it stays (no chains)
    assert jaccard(*(shingles(words(r["question"]), 2) for r in records[1:])) >= 0.7
    assert kept == [records[0], records[2]]


def test_different_questions_on_one_template_stay():
    template = "Which river flows past the town where {} was born?"
    records = [pair(template.format(name)) for name in ("Ada Marlowe", "Tobias Wren", "Mira Holt")]
    kept, removals = remove_near_duplicates(records)
    assert kept == records and removals == []


def test_across_runs_the_earlier_run_keeps_its_pair():
    first_run = [pair(BRIDGE, "Ada Marlowe", ["p-bridge"], seed="w001")]
    second_run = [pair(RECTOR, "Tobias Wren", ["p-corvel"], seed="w001"),
                  pair(BRIDGE.upper().replace("?", "!"), "Ada Marlowe", ["p-bridge", "p-ferry"], seed="w009")]
    kept, removals = remove_near_duplicates(first_run + second_run)
    assert kept == first_run + second_run[:1]
    assert [(r.removed_index, r.kept_index, r.similarity) for r in removals] == [(2, 0, 1.0)]


def test_the_same_records_give_the_same_answer_in_any_process():
    rng = random.Random(3)
    vocabulary = "river town bridge ferry engineer rector college founded harbour estuary island tower".split()
    records = [pair(" ".join(rng.choice(vocabulary) for _ in range(12)) + "?", str(i % 7), [f"p{i % 5}"])
               for i in range(200)]
    kept, removals = remove_near_duplicates(records)
    assert kept == remove_near_duplicates(records)[0]
    assert [r.to_dict() for r in removals] == [r.to_dict() for r in remove_near_duplicates(records)[1]]
    code = ("from sage_dspy.dataset.minhash import MinHasher, shingles, words; "
            "print(MinHasher().signature(shingles(words('Which engineer designed the bridge?'), 2))[:4].tolist())")
    here = MinHasher().signature(shingles(words("Which engineer designed the bridge?"), 2))[:4].tolist()
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert other.strip() == str(here)  # not Python's hash(), which is salted per process


def test_every_removal_points_at_a_kept_record_at_or_above_the_threshold():
    rng = random.Random(5)
    base = [f"Which {a} was built near the {b} by the {c} of {d}?" for a, b, c, d in
            zip(*(rng.sample("tower bridge mill church harbour castle school market inn dock".split(), 10)
                  for _ in range(4)))]
    records = [pair(q) for q in base] + [pair(q.replace("built", "made")) for q in base]
    kept, removals = remove_near_duplicates(records, threshold=0.6)
    kept_ids = {id(r) for r in kept}
    assert removals and all(id(r.kept) in kept_ids and r.similarity >= 0.6 for r in removals)
    assert len(kept) + len(removals) == len(records)


@pytest.mark.parametrize("threshold", [0, 1.5, -0.1])
def test_a_threshold_outside_0_1_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold"):
        remove_near_duplicates([], threshold=threshold)


def test_minhash_estimates_jaccard_and_lsh_finds_pairs_above_its_threshold():
    hasher, rng = MinHasher(), random.Random(1)
    universe = [str(i) for i in range(60)]
    errors = []
    for _ in range(200):
        a, b = (frozenset(rng.sample(universe, rng.randint(5, 30))) for _ in range(2))
        errors.append(abs(jaccard(a, b) - float((hasher.signature(a) == hasher.signature(b)).mean())))
    assert np.mean(errors) < 0.05  # 128 permutations: standard error at most 0.044
    index = LSHIndex(0.5)
    near = frozenset(universe[:20])
    index.add("near", hasher.signature(near | {"x", "y"}))
    index.add("far", hasher.signature(frozenset(universe[40:])))
    assert index.candidates(hasher.signature(near)) == ["near"]


def test_bands_bring_a_pair_at_the_threshold_together_almost_always():
    for threshold in (0.3, 0.5, 0.7, 0.9):
        rows = rows_per_band(threshold)
        assert 1 - (1 - threshold ** rows) ** (128 // rows) >= 0.99
        assert 1 - (1 - threshold ** (rows + 1)) ** (128 // (rows + 1)) < 0.99 or rows == 128


def test_short_and_empty_questions():
    assert shingles(["who"], 2) == frozenset(["who"])
    assert shingles([], 2) == frozenset()
    kept, removals = remove_near_duplicates([pair(""), pair(""), pair("Who?"), pair("who")])
    assert [r.removed_index for r in removals] == [3]  # two empty questions are no evidence of anything
