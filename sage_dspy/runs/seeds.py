"""The seeds of a run: which passages, and per seed the number of searches to aim for and the answer type.

Both `--seeds M` and `--accepted N` read one fixed stream, whose first seeds never depend on how many are read:
`--seeds 4` is `--seeds 2` and two more, and `--accepted N` is `--seeds M` for the M it took, whatever the order
its workers finish in. Runs written before that drew M seeds at once (`draw_seeds`: a passage sample, then a
target and answer type per seed, so seed 1's target depended on M); their folders, whose config.json has no
`seed_order`, resume to those seeds (`LEGACY_ORDER`)."""

import itertools
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


STREAM_ORDER, LEGACY_ORDER = "stream", "drawn-at-once"  # GenerateConfig.seed_order


def first_seeds(passages: Sequence[Passage], count: int, targets: tuple[int, int], random_seed: int,
                order: str = STREAM_ORDER) -> list[SeedTask]:
    """`--seeds M`: the first M seeds of the stream (or, for an older run's folder, its own draw)."""
    if order == LEGACY_ORDER:
        return draw_seeds(passages, count, targets, random_seed)
    return list(itertools.islice(seed_stream(passages, targets, random_seed), count))


def draw_seeds(passages: Sequence[Passage], count: int, targets: tuple[int, int], random_seed: int) -> list[SeedTask]:
    """How `--seeds` drew before the stream, kept for folders written then: random seed passages, then per seed
    a target and an answer type. The targets come after all the passages, so a larger count changes them."""
    rng = random.Random(random_seed)
    chosen = rng.sample(passages, min(count, len(passages)))
    return [SeedTask(p, rng.randint(*targets), rng.choice(ANSWER_TYPES)) for p in chosen]


def key_of(task: SeedTask) -> str:
    """The seed's key in a run folder, the same as its record's (folder.record_key)."""
    return seed_key(task.passage.id, task.target, task.answer_type)
