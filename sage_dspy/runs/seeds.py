"""The seeds of a run: which passages, and per seed the number of searches to aim for and the answer type."""

import random
from dataclasses import dataclass

from sage_dspy.answers import ANSWER_TYPES
from sage_dspy.runs.folder import seed_key
from sage_dspy.search.passages import Passage



@dataclass(frozen=True)
class SeedTask:
    passage: Passage
    target: int
    answer_type: str


def draw_seeds(passages: list[Passage], count: int, targets: tuple[int, int], random_seed: int) -> list[SeedTask]:
    """Random seed passages; per seed a target drawn from the range and an answer type (the paper's recipe)."""
    rng = random.Random(random_seed)
    chosen = rng.sample(passages, min(count, len(passages)))
    return [SeedTask(p, rng.randint(*targets), rng.choice(ANSWER_TYPES)) for p in chosen]


def key_of(task: SeedTask) -> str:
    """The seed's key in a run folder, the same as its record's (folder.record_key)."""
    return seed_key(task.passage.id, task.target, task.answer_type)
