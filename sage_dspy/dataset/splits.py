"""Splits that do not leak: pairs that share a seed or a supporting passage always land in the same split.

A pair's evidence is its seed passage and its supporting passages. Two pairs whose evidence overlaps are in one
group (union-find, so the relation is closed over chains of pairs); whole groups are assigned to splits,
largest first, each to the split furthest below its share, in an order shuffled by the split seed. So no
passage that answers a test question is in a training question's evidence, and split sizes come as close to
the requested ratios as whole groups allow.
"""

import random
import re

from sage_dspy.errors import SageError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
TOLERANCE = 1e-6


class SplitSpecError(SageError, ValueError):
    """A --splits value that cannot be used."""


def parse_splits(text: str) -> dict[str, float]:
    """'train=0.9,test=0.1' -> {'train': 0.9, 'test': 0.1}: distinct names, shares above 0 summing to 1."""
    hint = "give name=share pairs summing to 1, such as train=0.9,test=0.1"
    ratios: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, share = part.partition("=")
        name = name.strip()
        try:
            value = float(share)
        except ValueError:
            raise SplitSpecError(f"split {part!r} has no share; {hint}") from None
        if not _NAME.match(name) or name in ratios:
            raise SplitSpecError(f"split name {name!r} is empty, repeated or not a plain word; {hint}")
        if not 0 < value <= 1:
            raise SplitSpecError(f"split {name!r} has share {share.strip()}, outside (0, 1]; {hint}")
        ratios[name] = value
    if not ratios:
        raise SplitSpecError(f"no split in {text!r}; {hint}")
    total = sum(ratios.values())
    if abs(total - 1) > TOLERANCE:
        raise SplitSpecError(f"the shares in {text!r} sum to {total:g}, not 1; {hint}")
    return ratios


def evidence(pair: dict) -> set[str]:
    """The passages a pair is built on: its seed and its supporting passages."""
    return {pair["seed_id"], *pair.get("supporting_ids", [])}


def groups(pairs: list[dict]) -> list[list[int]]:
    """Indices of pairs, grouped so that pairs sharing any evidence passage are in one group."""
    parent = list(range(len(pairs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees flat
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    for index, pair in enumerate(pairs):
        for passage in sorted(evidence(pair)):
            other = first_with.setdefault(passage, index)
            parent[root(index)] = root(other)
    by_root: dict[int, list[int]] = {}
    for index in range(len(pairs)):
        by_root.setdefault(root(index), []).append(index)
    return list(by_root.values())


def assign(pairs: list[dict], ratios: dict[str, float], seed: int = 0) -> dict[str, list[dict]]:
    """Pairs per split (in the order of `ratios`), whole groups at a time; pairs keep their input order within
    a split. The same pairs, ratios and seed always give the same splits."""
    shuffled = groups(pairs)
    random.Random(seed).shuffle(shuffled)
    shuffled.sort(key=len, reverse=True)  # stable: groups of one size stay in shuffled order
    targets = {name: share * len(pairs) for name, share in ratios.items()}
    chosen: dict[str, list[int]] = {name: [] for name in ratios}
    for group in shuffled:
        name = max(ratios, key=lambda n: targets[n] - len(chosen[n]))  # first of equals: the order given
        chosen[name].extend(group)
    return {name: [pairs[i] for i in sorted(indices)] for name, indices in chosen.items()}


def too_small(counts: dict[str, int], minimum: int, what: str = "pairs") -> str | None:
    """A sentence naming the smallest split when it has fewer than `minimum` rows; None when every split has
    enough.
    An empty split is refused rather than written: `datasets` cannot load a HF folder with an empty split
    ("corresponds to no data"), and an empty OpenAI validation file fails its file check."""
    name = min(counts, key=counts.__getitem__)  # the first of equals, in the order the splits were given
    if counts[name] >= minimum:
        return None
    return (f"split {name!r} would get {counts[name]} {what}, fewer than --min-per-split {minimum} "
            f"({sum(counts.values())} in all)")


def leaks(splits: dict[str, list[dict]], held_out: str) -> set[str]:
    """Passages in the evidence of a `held_out` pair that are also in another split's evidence (empty when
    the splits do not leak)."""
    held = set().union(*(evidence(p) for p in splits.get(held_out, [])))
    others = set().union(*(evidence(p) for name, rows in splits.items() if name != held_out for p in rows))
    return held & others
