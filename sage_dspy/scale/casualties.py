"""Which seeds a dead worker takes with it: every seed in flight on it is run again, and a seed that keeps
killing its worker is found and recorded as failed, so the run goes on without it.

A worker process that dies (killed, out of memory, a crash in native code, a node lost) loses the seeds it was
running, and nothing says which one of them killed it. The usual cause is no seed at all (a node went away), so a
seed lost once runs again like any other. A seed in flight at `SUSPECT_DEATHS` deaths runs again alone on a
worker, and one that kills a worker while it runs alone `ALONE_DEATHS` times is the culprit: recorded as
failed, so an innocent seed that shared a worker with it is never failed with it. Plain Python, no Ray.
"""

from dataclasses import dataclass, field

SUSPECT_DEATHS = 2  # deaths a seed was in flight at before it runs alone
ALONE_DEATHS = 2  # deaths of a worker running only this seed before the seed is recorded as failed
WORKER_DIED = "WorkerDied"  # the record's error_kind: not a service kind, so a resume keeps the failure


@dataclass
class Casualties:
    deaths: dict[str, int] = field(default_factory=dict)  # seed key -> deaths it was in flight at
    alone: dict[str, int] = field(default_factory=dict)  # seed key -> deaths while it ran alone

    def must_run_alone(self, key: str) -> bool:
        return self.deaths.get(key, 0) >= SUSPECT_DEATHS

    def died(self, key: str, ran_alone: bool) -> bool:
        """A worker died with this seed in flight; True when the seed is to be recorded as failed."""
        self.deaths[key] = self.deaths.get(key, 0) + 1
        if ran_alone:
            self.alone[key] = self.alone.get(key, 0) + 1
        return self.alone.get(key, 0) >= ALONE_DEATHS

    def reason(self, key: str, last_error: str) -> str:
        return (f"its worker process died {self.deaths[key]} times while running it, {self.alone.get(key, 0)} "
                f"of them running it alone (last: {last_error})")
