"""Near-duplicate pairs, within one run or across several: the same question reworded, or the same answer
reached through the same supporting passages. The first record of each (input order) stays; every removal
names the kept record it duplicates, by which rule, and how similar the two are.

A record is compared with the records kept before it only, so a removed record always names a kept one it
really resembles (no chains where C goes because it resembles B, which went because it resembled A).
"""

from dataclasses import dataclass

from sage_dspy.answers import normalize_answer
from sage_dspy.dataset.minhash import LSHIndex, MinHasher, jaccard, shingles, words

NEAR_QUESTION = "near-duplicate question"
SAME_ANSWER_AND_SUPPORT = "same answer, same supporting passages"
DEFAULT_THRESHOLD = 0.7


@dataclass(frozen=True)
class Removal:
    removed_index: int  # positions in the list given to remove_near_duplicates
    kept_index: int
    removed: dict
    kept: dict
    rule: str
    similarity: float  # question Jaccard over word 2-grams; 1.0 for the answer-and-support rule

    def to_dict(self) -> dict:
        return {"rule": self.rule, "similarity": round(self.similarity, 4),
                "removed": _identity(self.removed, self.removed_index),
                "duplicate_of": _identity(self.kept, self.kept_index)}


def _identity(record: dict, index: int) -> dict:
    return {"index": index, "seed_id": record.get("seed_id", ""), "question": record.get("question", ""),
            "answer": record.get("answer", "")}


def answer_support_key(record: dict) -> tuple | None:
    """Same normalised answer and the same set of supporting passages; None when either is missing."""
    answer = normalize_answer(record.get("answer", ""))
    support = frozenset(record.get("supporting_ids") or ())
    return (answer, support) if answer and support else None


def remove_near_duplicates(records: list[dict], *, threshold: float = DEFAULT_THRESHOLD
                           ) -> tuple[list[dict], list[Removal]]:
    """Keep the first record of each near-duplicate group; `threshold` is the question Jaccard (over word
    2-grams) from which two questions count as one reworded."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold {threshold} is not within (0, 1]")
    hasher, lsh = MinHasher(), LSHIndex(threshold)
    kept: list[int] = []
    kept_shingles: dict[int, frozenset] = {}
    by_answer_support: dict[tuple, int] = {}
    removals: list[Removal] = []
    for index, record in enumerate(records):
        question = shingles(words(record.get("question", "")))
        signature = hasher.signature(question)
        match = _same_answer_and_support(record, by_answer_support) or _near_question(
            question, lsh.candidates(signature), kept_shingles, threshold)
        if match:
            kept_index, rule, similarity = match
            removals.append(Removal(index, kept_index, record, records[kept_index], rule, similarity))
            continue
        kept.append(index)
        kept_shingles[index] = question
        lsh.add(index, signature)
        key = answer_support_key(record)
        if key is not None:
            by_answer_support.setdefault(key, index)
    return [records[i] for i in kept], removals


def _same_answer_and_support(record: dict, seen: dict[tuple, int]):
    key = answer_support_key(record)
    if key is not None and key in seen:
        return seen[key], SAME_ANSWER_AND_SUPPORT, 1.0
    return None


def _near_question(question: frozenset, candidates: list[int], kept_shingles: dict[int, frozenset],
                   threshold: float):
    """The most similar kept question at or above `threshold` (the earliest on ties), confirmed exactly."""
    best = None
    for candidate in candidates:
        similarity = jaccard(question, kept_shingles[candidate])
        if similarity >= threshold and (best is None or similarity > best[2]):
            best = (candidate, NEAR_QUESTION, similarity)
    return best
