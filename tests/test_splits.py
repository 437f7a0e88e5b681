"""Leak-free splits: parsing the spec, grouping by shared evidence, sizes near the ratios, determinism."""

import random

import pytest

from sage_dspy.dataset.splits import SplitSpecError, assign, evidence, groups, leaks, parse_splits


def pair(seed: str, *support: str) -> dict:
    return {"seed_id": seed, "supporting_ids": [seed, *support], "question": f"q about {seed} {support}"}


@pytest.mark.parametrize("text, expected", [
    ("train=0.9,test=0.1", {"train": 0.9, "test": 0.1}),
    (" train = 0.8 , validation=0.1, test=0.1 ", {"train": 0.8, "validation": 0.1, "test": 0.1}),
    ("train=1", {"train": 1.0}),
    ("train=0.7,test=0.3,", {"train": 0.7, "test": 0.3}),
])
def test_split_specs_parse(text, expected):
    assert parse_splits(text) == pytest.approx(expected)
    assert list(parse_splits(text)) == list(expected)  # the order given is kept


@pytest.mark.parametrize("text, problem", [
    ("train=0.7,test=0.2", "sum to 0.9, not 1"),
    ("train=0.9,test=0.2", "sum to 1.1, not 1"),
    ("train=0.9,train=0.1", "repeated"),
    ("train=0.9,test", "has no share"),
    ("train=abc", "has no share"),
    ("train=1.5,test=-0.5", "outside (0, 1]"),
    ("train=1,test=0", "outside (0, 1]"),
    ("=1", "empty"),
    ("tr ain=1", "not a plain word"),
    ("", "no split"),
])
def test_bad_split_specs_say_what_is_wrong_and_how_to_fix_it(text, problem):
    with pytest.raises(SplitSpecError) as caught:
        parse_splits(text)
    assert problem in str(caught.value) and "train=0.9,test=0.1" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_pairs_sharing_a_seed_or_a_passage_are_grouped_transitively():
    pairs = [pair("a", "x"), pair("b", "y"), pair("c", "x", "z"), pair("a"), pair("d", "z"), pair("e")]
    found = sorted(sorted(group) for group in groups(pairs))
    # 0-2 share x, 2-4 share z, 0-3 share seed a: one chain; 1 and 5 stand alone
    assert found == [[0, 2, 3, 4], [1], [5]]


def test_evidence_is_the_seed_and_the_supporting_passages():
    assert evidence({"seed_id": "s", "supporting_ids": ["p", "q"]}) == {"s", "p", "q"}


def random_pairs(rng: random.Random, count: int, passages: int) -> list[dict]:
    return [pair(f"p{rng.randrange(passages)}", *(f"p{rng.randrange(passages)}" for _ in range(rng.randint(1, 3))))
            for _ in range(count)]


@pytest.mark.parametrize("seed", range(20))
def test_no_evidence_passage_of_a_held_out_pair_is_in_another_split(seed):
    rng = random.Random(seed)
    pairs = random_pairs(rng, rng.randint(5, 80), rng.randint(20, 300))
    splits = assign(pairs, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=seed)
    assert sorted(map(id, (p for rows in splits.values() for p in rows))) == sorted(map(id, pairs))
    for name in splits:
        assert leaks(splits, name) == set()
        others = {passage for other, rows in splits.items() if other != name for p in rows for passage in evidence(p)}
        assert not any(evidence(p) & others for p in splits[name])


def test_a_leak_is_found_when_there_is_one():
    leaky = {"train": [pair("a", "x")], "test": [pair("b", "x")]}
    assert leaks(leaky, "test") == {"x"}


def test_singleton_groups_split_at_the_nearest_counts():
    pairs = [pair(f"s{i}") for i in range(20)]
    for ratios, sizes in (({"train": 0.9, "test": 0.1}, [18, 2]), ({"train": 0.75, "test": 0.25}, [15, 5]),
                          ({"train": 0.8, "validation": 0.1, "test": 0.1}, [16, 2, 2]), ({"train": 1.0}, [20])):
        assert [len(rows) for rows in assign(pairs, ratios, seed=3).values()] == sizes


def test_whole_groups_go_to_one_split_and_sizes_stay_close():
    # one group of 6 (chained by passage x), then 14 singletons: 0.7 of 20 is 14
    pairs = [pair(f"g{i}", "x") for i in range(6)] + [pair(f"s{i}") for i in range(14)]
    splits = assign(pairs, {"train": 0.7, "test": 0.3}, seed=0)
    assert [len(rows) for rows in splits.values()] == [14, 6]
    assert all(p in splits["train"] for p in pairs[:6]) or all(p in splits["test"] for p in pairs[:6])


def test_the_same_seed_gives_the_same_splits_and_another_seed_may_not():
    pairs = [pair(f"s{i}") for i in range(30)]
    ratios = {"train": 0.8, "test": 0.2}
    tests = {seed: [p["seed_id"] for p in assign(pairs, ratios, seed=seed)["test"]] for seed in range(5)}
    assert tests[0] == [p["seed_id"] for p in assign(pairs, ratios, seed=0)["test"]]
    assert len({tuple(test) for test in tests.values()}) > 1
    order = [p["seed_id"] for p in assign(pairs, ratios, seed=1)["train"]]
    assert order == sorted(order, key=lambda s: int(s[1:]))  # pairs keep their input order within a split
