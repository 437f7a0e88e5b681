"""`--accepted N`: seeds drawn from the run's seed stream until N pairs are kept (mark_kept's rules, duplicates
removed), whatever order workers finish in.

The answer is the smallest prefix of the stream that holds N kept pairs. A record is placed at its position in
the stream and the prefix only grows over positions that are all finished, so which pair counts as the
duplicate of which, and where the prefix ends, is the same for one worker or many, and on every resume.
Seeds that were running when the prefix was complete finish and are saved, but are no part of the run's
dataset or table."""

from typing import Callable, Iterable, Iterator

from sage_dspy.runs.folder import record_key
from sage_dspy.runs.records import mark_kept
from sage_dspy.runs.seeds import SeedTask, key_of

BEYOND = "past the accepted count"  # the drop reason of a seed that finished after the prefix was complete


class AcceptedGoal:
    """The prefix of the seed stream decided so far, and how many pairs it keeps."""

    def __init__(self, goal: int):
        self.goal, self.kept = goal, 0
        self.prefix: list[dict] = []  # records in stream order, each marked by mark_kept
        self._positions: dict[str, int] = {}
        self._waiting: dict[int, dict] = {}  # finished records past a seed that is still running
        self._seen: set[str] = set()  # the questions kept so far, for mark_kept's duplicate rule

    @property
    def reached(self) -> bool:
        return self.kept >= self.goal

    def place(self, position: int, task: SeedTask) -> None:
        self._positions[key_of(task)] = position

    def add(self, record: dict) -> None:
        """A finished seed, in any order; the prefix grows while its next position is finished."""
        self._waiting[self._positions[record_key(record)]] = record
        while not self.reached and len(self.prefix) in self._waiting:
            record = self._waiting.pop(len(self.prefix))
            mark_kept([record], seen=self._seen)
            self.prefix.append(record)
            self.kept += record["kept"]

    def beyond(self) -> list[dict]:
        """Finished seeds after the prefix, in stream order, marked as no part of the run."""
        return [{**self._waiting[p], "kept": False, "drop_reason": BEYOND} for p in sorted(self._waiting)]

    def outcome(self, budget_spent: str) -> dict:
        """What the summary says: the goal, the pairs kept, the seeds it took, and why it fell short if it did."""
        seeds = len(self.prefix)
        short = ""
        if not self.reached:
            short = (f"{budget_spent} after {seeds} seeds" if budget_spent
                     else f"the corpus ran out after {seeds} seeds (every passage drawn)")
        return {"goal": self.goal, "kept": self.kept, "seeds": seeds, "short": short}


def tasks_until(goal: AcceptedGoal, stream: Iterable[SeedTask], done: dict[str, dict],
                on_done: Callable[[dict], None], before_first_run: Callable[[], None]) -> Iterator[SeedTask]:
    """The seeds still to run, lazily, until the goal is reached: seeds a resumed run already finished are
    placed in the prefix instead (and reported to `on_done`); `before_first_run` is called once, before the
    first seed that needs an LM (a resumed run that has enough pays for no call)."""
    checked = False
    for position, task in enumerate(stream):
        if goal.reached:
            return
        goal.place(position, task)
        if key_of(task) in done:
            goal.add(done[key_of(task)])
            on_done(done[key_of(task)])
            continue
        if not checked:
            before_first_run()
            checked = True
        yield task
