"""Paired comparison of two programs run on the same seeds: the difference, its 95% interval, a plain verdict.

No LM and no I/O: outcomes in, numbers and sentences out, so the statistics get table-driven tests.

Why these intervals. The seeds are shared, so each seed is a pair of outcomes and the test must be paired:
seed difficulty varies far more than the programs do, and an unpaired interval would drown the difference in
it. For a rate (accepted, correct) each seed is a 2x2 cell (both, only A, only B, neither) and the difference
is (only B - only A) / n, McNemar's setting. Its interval is Agresti & Min's (2005): add 0.5 to every cell,
then Wald. Unlike the paired bootstrap it stays honest at the edges this tool meets all the time: when every
seed ties (no discordant pair) the bootstrap's interval is 0 to 0, certainty from 40 seeds; Agresti-Min still
says "+-5 points". Its coverage is close to 95% from small n on (tests/test_paired.py simulates it). For a
ratio over seeds (mean searches of correct pairs, LM calls per kept pair) there is no 2x2 table: those use a
paired percentile bootstrap (seeds resampled together, fixed random seed so a report never changes).
"""

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

Z_95 = 1.959963984540054  # two-sided 95%
Z_POWER_80 = 0.8416212335729143  # one-sided 80% power
DETECTABLE_POINTS = 10  # the difference a "how many seeds would it take" line is sized for
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Difference:
    """B minus A: the point estimate and its 95% interval, in the metric's unit (points for rates)."""
    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    seeds: int

    @property
    def real(self) -> bool:
        """The interval leaves out 0: the data say which side is larger."""
        return self.low > 0 or self.high < 0


def paired_rate(a: Sequence[bool], b: Sequence[bool], metric: str = "accepted") -> Difference:
    """Difference in rate (B - A, in points) over paired seeds, with Agresti-Min's 95% interval."""
    n = _check_paired(a, b)
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    low, high = agresti_min(only_a, only_b, n)
    return Difference(metric, 100.0 * sum(map(bool, a)) / n, 100.0 * sum(map(bool, b)) / n,
                      100.0 * (only_b - only_a) / n, 100.0 * low, 100.0 * high, n)


def agresti_min(only_a: int, only_b: int, n: int) -> tuple[float, float]:
    """95% interval of p(only B) - p(only A) from the discordant counts of n paired seeds (as fractions)."""
    cells = n + 2  # four cells, each given half an observation
    p_a, p_b = (only_a + 0.5) / cells, (only_b + 0.5) / cells
    centre = p_b - p_a
    half = Z_95 * math.sqrt(max(p_a + p_b - centre ** 2, 0.0) / cells)
    return max(centre - half, -1.0), min(centre + half, 1.0)


def paired_bootstrap(a: Sequence[dict], b: Sequence[dict], statistic: Callable[[Sequence[dict]], float | None],
                     metric: str, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Difference | None:
    """statistic(B) - statistic(A) over paired seeds (each item one seed's record), with a percentile 95%
    interval from resampling the seeds together. None when the statistic is undefined on the data (no
    correct pair to count searches of, say)."""
    n = _check_paired(a, b)
    value_a, value_b = statistic(a), statistic(b)
    if value_a is None or value_b is None:
        return None
    draw, differences = random.Random(seed), []
    for _ in range(resamples):
        picks = [draw.randrange(n) for _ in range(n)]
        resampled_a, resampled_b = statistic([a[i] for i in picks]), statistic([b[i] for i in picks])
        if resampled_a is not None and resampled_b is not None:
            differences.append(resampled_b - resampled_a)
    differences.sort()
    low, high = _percentile(differences, 0.025), _percentile(differences, 0.975)
    return Difference(metric, value_a, value_b, value_b - value_a, low, high, n)


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return math.nan
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def seeds_to_detect(only_a: int, only_b: int, n: int, points: float = DETECTABLE_POINTS) -> int:
    """Seeds a paired (McNemar) test needs to detect a difference of `points` in rate at 5% two-sided with 80%
    power (Connor 1987), given the share of seeds on which the two programs disagree, as measured here (with
    Agresti-Min's half observation per cell, so a run with no disagreement still gives a finite answer)."""
    delta = points / 100.0
    disagree = max((only_a + only_b + 1.0) / (n + 2), delta)  # they cannot differ by more than they disagree
    root = Z_95 * math.sqrt(disagree) + Z_POWER_80 * math.sqrt(max(disagree - delta ** 2, 0.0))
    return math.ceil((root / delta) ** 2)


def discordant(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int]:
    """(seeds only A has, seeds only B has)."""
    return (sum(1 for x, y in zip(a, b) if x and not y), sum(1 for x, y in zip(a, b) if y and not x))


def verdict(name_a: str, name_b: str, difference: Difference, only_a: int, only_b: int,
            what: str = "accepts more pairs") -> str:
    """'B accepts more pairs than A (+12 points, 95% CI +4 to +20)', or 'no difference detectable with 40
    seeds (+3 points, 95% CI -5 to +11); about 150 seeds would detect 10 points'."""
    interval = f"{difference.difference:+.0f} points, 95% CI {difference.low:+.0f} to {difference.high:+.0f}"
    if difference.real:
        more, less = (name_b, name_a) if difference.difference > 0 else (name_a, name_b)
        return f"{more} {what} than {less} ({interval})"
    needed = seeds_to_detect(only_a, only_b, difference.seeds)
    if needed <= difference.seeds:
        return (f"no difference detectable with {difference.seeds} seeds ({interval}); {difference.seeds} seeds "
                f"would likely have shown a {DETECTABLE_POINTS}-point difference, so any there is is smaller")
    return (f"no difference detectable with {difference.seeds} seeds ({interval}); about {needed} seeds would "
            f"detect {DETECTABLE_POINTS} points")


def _check_paired(a: Sequence, b: Sequence) -> int:
    if len(a) != len(b) or not a:
        raise ValueError(f"a paired comparison needs the same seeds on both sides (got {len(a)} and {len(b)})")
    return len(a)
