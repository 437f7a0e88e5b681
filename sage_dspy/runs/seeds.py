"""The seeds of a run: which passages, and per seed the number of searches to aim for and the answer type.

`--seeds M` draws M seeds at once, as every run before `--accepted` did (so their folders resume to the same
seeds). `--accepted N` reads one fixed stream instead, whose first seeds never depend on how many are read:
a longer run only extends a shorter one, whatever the order its workers finish in."""

import random
from dataclasses import dataclass
from collections.abc import Iterator, Sequence

from sage_dspy.answers import ANSWER_TYPES
from sage_dspy.runs.folder import seed_key
from sage_dspy.search.passages import Passage


@dataclass(frozen=True)
class SeedTask:
    passage: Passage
    target: int
    answer_type: str


def seed_stream(passages: Sequence[Passage], targets: tuple[int, int], random_seed: int) -> Iterator[SeedTask]:
    """Passages without replacement in a seeded random order, each with a target drawn from the range and an
    answer type (the paper's recipe). A lazy Fisher-Yates shuffle: seed i's draws come right after seed i-1's,
    so no later seed changes an earlier one, and a huge corpus is never copied."""
    rng, moved, count = random.Random(random_seed), {}, len(passages)
    for position in range(count):
        chosen = rng.randrange(position, count)
        index = moved.get(chosen, chosen)
        moved[chosen] = moved.get(position, position)  # the passage at `position` takes the chosen one's place
        yield SeedTask(passages[index], rng.randint(*targets), rng.choice(ANSWER_TYPES))


def draw_seeds(passages: Sequence[Passage], count: int, targets: tuple[int, int], random_seed: int) -> list[SeedTask]:
    """`--seeds`: random seed passages; per seed a target drawn from the range and an answer type (the paper's
    recipe). Unlike the stream, a larger count draws other seeds, not more of the same."""
    rng = random.Random(random_seed)
    chosen = rng.sample(passages, min(count, len(passages)))
    return [SeedTask(p, rng.randint(*targets), rng.choice(ANSWER_TYPES)) for p in chosen]


def key_of(task: SeedTask) -> str:
    """The seed's key in a run folder, the same as its record's (folder.record_key)."""
    return seed_key(task.passage.id, task.target, task.answer_type)
