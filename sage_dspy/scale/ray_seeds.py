"""`generate --ray [ADDRESS]`: the run's seeds on a pool of Ray actors, each holding its share of the calls in
flight; the driver (runs/generate.py) still writes every record, so resume, the lock, budgets, the summary,
MLflow and the progress bar are those of a local run.

`RayEngine.seed_runner` yields a drop-in for `scheduler.run_seeds`: records come back as seeds finish, each
charged to the budget before it is yielded, and no seed starts once the budget is spent. `RayEngine.session`
holds one cluster across several runs (evaluate's recipes); the actors are each run's own. An actor that dies
loses only the seeds in flight on it: Ray restarts it (it builds its program again) and those seeds run again
(casualties.py finds a seed that keeps killing its worker and records it as failed instead).
"""

import contextlib
import importlib.util
import os
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import dspy

from sage_dspy.errors import SageError
from sage_dspy.redact import redact_text
from sage_dspy.runs.budget import CallBudget
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.program import PROGRAM_FILE
from sage_dspy.runs.records import record_for
from sage_dspy.runs.seeds import SeedTask, key_of
from sage_dspy.scale.casualties import WORKER_DIED, Casualties
from sage_dspy.scale.ray_connect import RayConnectError, check_listening, connect_timeout, within
from sage_dspy.scale.worker import SeedWorker
from sage_dspy.search.index import pack_index
from sage_dspy.search.passages import Passage, corpus_fingerprint

LOCAL_CPUS = 2  # a cluster `--ray` starts on this machine when given no address
PROBE_PAUSE_S = 0.2  # between asks whether a restarting actor answers again
# Ray's own defaults that would reach outside this machine or open ports beyond the loopback.
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0"}


NO_RAY = "--ray needs Ray, which is not installed: pip install 'sage-dspy[ray]'"


class RayUnavailableError(SageError, RuntimeError):
    """--ray without Ray installed, a cluster that cannot be reached, or actors that cannot start."""


def import_ray():
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(NO_RAY) from None
    return ray


@dataclass
class Slot:
    """One actor: its handle, its share of the calls in flight, and the seeds it runs now."""
    actor: object
    share: int
    running: int = 0
    alone: bool = False  # it runs one seed under suspicion, and nothing beside it
    draining: bool = False  # reserved for such a seed: it gets no new seed until it is idle
    epoch: int = 0  # deaths seen so far: a seed lost in an earlier epoch was lost to a death already counted
    down: bool = False  # died and not yet answering again (Ray is restarting it): it gets nothing meanwhile

    def free(self) -> bool:
        return not self.down and not self.alone and not self.draining and self.running < self.share


@dataclass
class RayEngine:
    """Where seeds run: `address` "" starts a local cluster of LOCAL_CPUS CPUs on 127.0.0.1 (stopped after the
    run, or at the end of a `session`), "auto" or "ray://host:port" joins one; a Ray already initialised in this
    process is used as it is.
    `actors`: how many (default: one per CPU of the cluster, at most one per call in flight)."""

    address: str = ""
    actors: int | None = None
    pids: list[int] = field(default_factory=list)  # the actors' process ids, once started (tests kill one)
    reruns: int = 0  # seeds run again because their actor died under them
    _held: "_Connection | None" = field(default=None, init=False, repr=False)  # the open session's, if any

    def __post_init__(self):
        if importlib.util.find_spec("ray") is None:  # said before the corpus is read or the folder locked
            raise RayUnavailableError(NO_RAY)

    @contextlib.contextmanager
    def session(self) -> Iterator["RayEngine"]:
        """Hold one cluster for every run in the block: started (or joined) at the first seed of any of them,
        and what was started is stopped when the block ends, not after each run (a local cluster takes seconds
        to start). A block whose runs need no seed connects to nothing."""
        self._held = _Connection(self)
        try:
            yield self
        finally:
            held, self._held = self._held, None
            held.close()

    @contextlib.contextmanager
    def seed_runner(self, config: GenerateConfig, passages: Sequence[Passage], program_folder: Path | None,
                    parallel_attempts: bool) -> Iterator:
        """A `run_seeds` for this run; the cluster is started (or joined) at its first seed, and what was
        started is stopped when the block ends, unless a `session` holds it. The actors are this run's."""
        connection = self._held or _Connection(self)
        runner = _Runner(self, connection, config, passages, program_folder, parallel_attempts)
        try:
            yield runner.run
        finally:
            runner.close()
            if connection is not self._held:
                connection.close()

    def connect(self):
        if self.address:
            check_listening(self.address)  # before Ray sees the address (see scale/ray_connect.py)
        ray = import_ray()
        if ray.is_initialized():
            return ray, False
        try:
            if self.address:
                within(connect_timeout(), self.address,
                       lambda: ray.init(address=self.address, log_to_driver=False, logging_level="WARNING"))
            else:
                ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, _node_ip_address="127.0.0.1",
                         log_to_driver=False, logging_level="WARNING")
        except RayConnectError:
            raise
        except Exception as error:  # ConnectionError, RuntimeError, ValueError: Ray's own
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise RayUnavailableError(f"could not start or join {where} ({redact_text(str(error)).splitlines()[0]}"
                                      "); check --ray ADDRESS (auto, ray://host:10001) or run without --ray") from None
        return ray, True


class _Connection:
    """The engine's link to its cluster, made when a seed first needs it; `close` stops what it started."""

    def __init__(self, engine: RayEngine):
        self.engine, self.ray, self.started = engine, None, False

    def open(self):
        if self.ray is None:
            self.ray, self.started = self.engine.connect()
        return self.ray

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
        self.ray, self.started = None, False


def shares(total: int, actors: int) -> list[int]:
    """`total` calls in flight split across `actors` as evenly as whole numbers allow (none gets 0)."""
    actors = max(1, min(actors, total))
    return [total // actors + (i < total % actors) for i in range(actors)]


class _Runner:
    def __init__(self, engine: RayEngine, connection: _Connection, config: GenerateConfig,
                 passages: Sequence[Passage], program_folder, parallel_attempts: bool):
        self.engine, self.connection, self.config, self.passages = engine, connection, config, passages
        self.program_folder, self.parallel_attempts = program_folder, parallel_attempts
        self.ray, self.slots = None, []

    def close(self) -> None:
        """This run's actors go; the cluster is the connection's to stop."""
        for slot in self.slots:
            self.ray.kill(slot.actor, no_restart=True)

    def _start(self, workers: int) -> None:
        ray = self.ray = self.connection.open()
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        program = ((Path(self.program_folder) / PROGRAM_FILE).read_bytes() if self.program_folder is not None
                   else None)
        index = self._index_arguments()
        cache = {"enable_disk_cache": dspy.cache.enable_disk_cache, "enable_memory_cache": dspy.cache.enable_memory_cache}
        # Restarted by Ray when its process dies (its seeds in flight are ours to re-run: no task retries).
        remote = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(SeedWorker)
        for share in shares(workers, self.engine.actors or cpus):
            # threads for `share` seeds at once, and one more for pid() while they run
            actor = remote.options(max_concurrency=share + 1).remote(self.config, share, program,
                                                                      self.parallel_attempts, *index, cache)
            self.slots.append(Slot(actor, share))
        try:
            self.engine.pids[:] = ray.get([slot.actor.pid.remote() for slot in self.slots])
        except ray.exceptions.RayError as error:
            raise RayUnavailableError(f"the Ray actors could not start: {_first_line(error)}") from None

    def _index_arguments(self) -> tuple[str, str, list]:
        """The index folder as this machine names it, the corpus fingerprint, and the index's files in the object
        store (`put` once; a node fetches them only if its actors cannot read the folder) when some node of the
        cluster is not this one. A retrieval server needs none of it."""
        if self.config.retriever:
            return "", "", []
        fingerprint = corpus_fingerprint(self.passages)
        folder = Path(self.config.index_root).resolve() / fingerprint
        here = self.ray.get_runtime_context().get_node_id()
        nodes = {node["NodeID"] for node in self.ray.nodes() if node.get("Alive")}
        shipped = [] if nodes <= {here} else [self.ray.put(pack_index(folder))]
        return str(folder), fingerprint, shipped

    def run(self, program, tasks: Iterable[SeedTask], lm_ids: dict[str, str], workers: int,
            budget: CallBudget) -> Iterator[dict]:
        """`scheduler.run_seeds` on the actors (`program` is the driver's copy, unused: each actor built its own).
        `tasks` may be lazy (`--accepted`): the next seed is drawn only when an actor has room for it."""
        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        if self.ray is None:
            self._start(max(workers, 1))
        pool = _Pool(self.ray, self.slots, lm_ids)
        try:
            yield from pool.run(first, tasks, budget)
        finally:
            self.engine.reruns += pool.reruns
        if pool.reruns:
            warnings.warn(f"{pool.reruns} seed(s) ran again after the Ray actor running them died; no record was "
                          "lost or written twice")


class _Pool:
    """The driver's loop: seeds to actors with room, records back as they finish, the seeds of a dead actor
    run again (a suspect one alone)."""

    def __init__(self, ray, slots: list[Slot], lm_ids: dict[str, str]):
        self.ray, self.slots, self.lm_ids = ray, slots, lm_ids
        self.casualties, self.retry = Casualties(), deque()
        self.running: dict = {}  # object ref -> (number, task, slot, the slot's epoch when it was sent)
        self.probes: dict = {}  # object ref of a pid() call -> the slot that died, until it answers
        self.number, self.reruns = 0, 0

    def run(self, first: SeedTask, tasks: Iterator[SeedTask], budget: CallBudget) -> Iterator[dict]:
        fresh = _chain(first, tasks)
        while True:
            self._submit(fresh, budget)
            if not self.running and not self.probes:
                return
            [ref], _ = self.ray.wait([*self.running, *self.probes], num_returns=1)
            if ref in self.probes:
                self._probed(ref)
                continue
            number, task, slot, epoch = self.running.pop(ref)
            slot.running -= 1
            ran_alone, slot.alone = slot.alone, False
            try:
                record = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as error:
                if epoch == slot.epoch:  # the first news of this death: the slot waits until Ray restarted it
                    slot.epoch, slot.down = slot.epoch + 1, True
                    self._probe(slot)
                record = self._lost(number, task, ran_alone, error)
                if record is None:
                    continue
            budget.charge(record)
            yield record

    def _probe(self, slot: Slot) -> None:
        self.probes[slot.actor.pid.remote()] = slot

    def _probed(self, ref) -> None:
        """A dead slot's pid() came back: it is up again, or not yet (asked again shortly)."""
        slot = self.probes.pop(ref)
        try:
            self.ray.get(ref)
            slot.down = False
        except self.ray.exceptions.RayActorError:
            time.sleep(PROBE_PAUSE_S)
            self._probe(slot)

    def _submit(self, fresh: Iterator, budget: CallBudget) -> None:
        """Seeds lost to a dead actor first (they had started before any budget ran out), then new ones while
        the budget allows. A suspect seed waits for an actor to be idle, and runs there alone."""
        while self.retry:
            number, task = self.retry[0]
            slot = self._slot_for(alone=self.casualties.must_run_alone(key_of(task)))
            if slot is None:
                return  # new seeds wait too: the retry keeps its place at the front
            self.retry.popleft()
            self._send(slot, number, task)
        while budget.allows_more():
            slot = self._slot_for(alone=False)
            if slot is None:
                return
            task = next(fresh, None)
            if task is None:
                return
            self._send(slot, self.number, task)
            self.number += 1

    def _slot_for(self, alone: bool) -> Slot | None:
        if not alone:
            free = [slot for slot in self.slots if slot.free()]
            return min(free, key=lambda slot: slot.running / slot.share) if free else None
        idle = next((slot for slot in self.slots if slot.running == 0 and not slot.alone and not slot.down), None)
        if idle is not None:
            for slot in self.slots:
                slot.draining = False
            idle.alone = True
            return idle
        if not any(slot.draining for slot in self.slots):
            min((s for s in self.slots if not s.alone), key=lambda s: s.running, default=self.slots[0]).draining = True
        return None

    def _send(self, slot: Slot, number: int, task: SeedTask) -> None:
        self.running[slot.actor.run.remote(number, task, self.lm_ids)] = (number, task, slot, slot.epoch)
        slot.running += 1

    def _lost(self, number: int, task: SeedTask, ran_alone: bool, error: Exception) -> dict | None:
        """A seed whose actor died under it: run it again (None), or its failed record once it is the culprit."""
        key = key_of(task)
        if not self.casualties.died(key, ran_alone):
            self.retry.append((number, task))
            self.reruns += 1
            return None
        reason = self.casualties.reason(key, _first_line(error))
        return record_for(task, None, self.lm_ids, error=reason, error_kind=WORKER_DIED) | {
            "lm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "lm_usage": [], "seconds": 0.0}


def _chain(first: SeedTask, rest: Iterator[SeedTask]) -> Iterator[SeedTask]:
    yield first
    yield from rest


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in redact_text(str(error)).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:240]
