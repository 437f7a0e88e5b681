"""MinHash signatures and LSH banding over word shingles, in numpy, seeded so every run finds the same pairs.

`datasketch` is not in the lock, and what both dedup.py and decontaminate.py need is small: a signature
per question, buckets that bring similar questions together, and an exact Jaccard check on each candidate
(so the similarity reported is the true one, not an estimate). Hashes come from blake2b, not Python's
`hash()`, which is salted per process.
"""

import hashlib

import numpy as np

from sage_dspy.answers import normalize_answer

NUM_PERM = 128
# Word 2-grams: one changed word in a 15-word question keeps 12 of its 14 shingles (Jaccard 0.75); with
# 3-grams it keeps 10 of 13 (0.63), below dedup's default threshold of 0.7.
SHINGLE_WORDS = 2
_SEED = 20260118


def words(text: str) -> list[str]:
    """The words a question is compared on: lowercased, without punctuation or articles."""
    return normalize_answer(text).split()


def shingles(tokens: list[str], size: int = SHINGLE_WORDS) -> frozenset[str]:
    """Word `size`-grams; a text shorter than `size` words is one shingle, so it still matches itself."""
    if len(tokens) <= size:
        return frozenset([" ".join(tokens)]) if tokens else frozenset()
    return frozenset(" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit flips about half the output bits (uint64 products wrap)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class MinHasher:
    """Signature = per permutation i, the least of mix(hash(shingle) xor seed_i) over the shingles.

    Not the textbook (a * x + b) mod p: with a and b small enough for uint64 that hash hardly wraps, so
    every permutation picks nearly the same minimum and similarity estimates collapse (measured: 0.27 for
    a pair of true Jaccard 0.88)."""

    def __init__(self, num_perm: int = NUM_PERM, seed: int = _SEED):
        self.seeds = np.random.default_rng(seed).integers(0, np.iinfo(np.uint64).max, size=num_perm,
                                                          dtype=np.uint64, endpoint=True)
        self.num_perm = num_perm

    def signature(self, shingle_set: frozenset[str]) -> np.ndarray:
        if not shingle_set:
            return np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        hashes = np.array(sorted(_hash64(s) for s in shingle_set), dtype=np.uint64)
        return _mix(np.bitwise_xor.outer(hashes, self.seeds)).min(axis=0)


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def rows_per_band(threshold: float, num_perm: int = NUM_PERM, recall: float = 0.99) -> int:
    """The most rows per band (fewest stray candidates) that still brings a pair at `threshold` together
    with probability `recall`: P(candidate | s) = 1 - (1 - s**r) ** (num_perm // r)."""
    best = 1
    for rows in range(1, num_perm + 1):
        if 1 - (1 - threshold ** rows) ** (num_perm // rows) >= recall:
            best = rows
    return best


class LSHIndex:
    """Keys bucketed by band of their signature; `candidates` returns every key sharing a bucket, in the
    order the keys were added (so whoever walks them first-to-last is deterministic)."""

    def __init__(self, threshold: float, num_perm: int = NUM_PERM):
        self.rows = rows_per_band(threshold, num_perm)
        self.bands = num_perm // self.rows
        self.buckets: list[dict[bytes, list]] = [{} for _ in range(self.bands)]
        self.order: dict = {}

    def _keys(self, signature: np.ndarray):
        for band in range(self.bands):
            yield band, signature[band * self.rows:(band + 1) * self.rows].tobytes()

    def add(self, key, signature: np.ndarray) -> None:
        self.order.setdefault(key, len(self.order))
        for band, bucket in self._keys(signature):
            self.buckets[band].setdefault(bucket, []).append(key)

    def candidates(self, signature: np.ndarray) -> list:
        found = {key for band, bucket in self._keys(signature) for key in self.buckets[band].get(bucket, ())}
        return sorted(found, key=self.order.__getitem__)
