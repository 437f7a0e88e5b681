"""The K attempts at one pair: one after another or all at once, stopping once the verdict is settled.

Either way the result is attempts 0..j, where j is the first attempt (in rollout order) that settles the
verdict, or all K when none does. Each attempt is a fixed rollout (its own sample), so running them at once
gives exactly the records of running them in order; only the LM calls spent differ: attempts after j that
were already under way are stopped at their next call, and their calls so far are paid for and not used.
"""

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable

from sage_dspy.method.feedback import Attempt
from sage_dspy.lm.inflight import stoppable

TryAttempt = Callable[[int], Attempt]  # rollout index -> the solved and judged attempt
Settles = Callable[[Attempt], bool]


def run_attempts(try_attempt: TryAttempt, k: int, settles: Settles | None = None, *,
                 parallel: bool = False) -> list[Attempt]:
    """Attempts 0..k-1, cut after the first that `settles` the verdict (None: never cut: the paper's protocol)."""
    if not parallel or k <= 1:
        attempts = []
        for index in range(k):
            attempts.append(try_attempt(index))
            if settles is not None and settles(attempts[-1]):
                break
        return attempts
    return _run_at_once(try_attempt, k, settles)


def _run_at_once(try_attempt: TryAttempt, k: int, settles: Settles | None) -> list[Attempt]:
    stops = [threading.Event() for _ in range(k)]

    def run(index: int) -> Attempt:
        with stoppable(stops[index]):
            return try_attempt(index)

    finished: dict[int, Attempt] = {}
    cut = k  # attempts from here on cannot change the verdict
    with ThreadPoolExecutor(max_workers=k, thread_name_prefix="sage-attempt") as pool:
        # Each thread gets a copy of this context: the role LM, usage counters and call slots of the seed.
        futures = {pool.submit(contextvars.copy_context().run, run, index): index for index in range(k)}
        for future in as_completed(futures):
            index = futures[future]
            finished[index] = future.result()  # try_attempt records failures; it does not raise
            if settles is not None and index < cut and settles(finished[index]):
                cut = index + 1
                for later in stops[cut:]:
                    later.set()
    return [finished[index] for index in range(cut)]
