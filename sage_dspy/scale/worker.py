"""What one Ray actor does: build the run's program once, open the index once, then run the seeds it is sent on
threads, with at most its share of the run's calls in flight. A plain class; ray_seeds.py makes it an actor.

Each actor builds its own role LMs from the run's settings (API keys come from the environment of the node it
runs on, never through Ray), its own program (a compiled program's state is sent along, so no node needs the
driver's folder) and reads the index from the driver's index folder where that path holds it (one machine, or
a shared file system), else from a copy its node unpacks once from Ray's object store. DSPy's response cache is
each node's own (DSPY_CACHEDIR there), its tiers on or off as in the driver's process.
"""

import contextvars
import os
import tempfile
from pathlib import Path

import dspy

from sage_dspy.lm.inflight import call_slots, in_lane
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.program import PROGRAM_FILE, build_program
from sage_dspy.runs.scheduler import run_seed
from sage_dspy.runs.seeds import SeedTask
from sage_dspy.search.index import SearchIndex, is_index_of, unpack_index
from sage_dspy.search.remote import RemoteIndex

NODE_INDEXES = Path(tempfile.gettempdir()) / "sage-dspy-indexes"  # where a node unpacks an index sent to it


class SeedWorker:
    """Built by Ray with the same arguments again when its process dies and it is restarted, so it needs nothing
    from the driver but them: `index_folder` (the driver's, read where this node sees it) and `shipped`, a list
    holding the index's files (`pack_index`, or an object ref to them) or nothing."""

    def __init__(self, config: GenerateConfig, calls: int, program_state: bytes | None, parallel_attempts: bool,
                 index_folder: str = "", fingerprint: str = "", shipped: list | None = None,
                 cache: dict | None = None):
        if cache and not all(cache.values()):  # the driver's process turned a tier of DSPy's cache off
            dspy.configure_cache(**cache)
        self.lms = RoleLMs.from_specs(config.lms, role_options=config.role_options,
                                      lanes=RoleLMs.lanes_for(calls), **config.lm_options)
        program_folder = None
        if program_state is not None:
            program_folder = Path(tempfile.mkdtemp(prefix="sage-program-"))
            (program_folder / PROGRAM_FILE).write_bytes(program_state)
        index = open_index(config, index_folder, fingerprint, shipped or [])
        self.program = build_program(config, index, self.lms, program_folder, parallel_attempts)
        # One bound on this actor's calls in flight, shared by every seed it runs at once: each seed runs in a
        # copy of this context (what scheduler.run_seeds does with its threads).
        self._context = contextvars.copy_context()
        self._slots = call_slots(calls)
        self._context.run(self._slots.__enter__)

    def __del__(self) -> None:
        slots = self.__dict__.pop("_slots", None)
        if slots is not None:  # left in the context it was entered in (a ContextVar token is only valid there)
            self._context.run(slots.__exit__, None, None, None)

    def pid(self) -> int:
        return os.getpid()

    def run(self, lane: int, task: SeedTask, lm_ids: dict[str, str]) -> dict:
        """One seed's record (a failure is the record's error, as in a local run)."""
        return self._context.copy().run(self._run_in_lane, lane, task, lm_ids)

    def _run_in_lane(self, lane: int, task: SeedTask, lm_ids: dict[str, str]) -> dict:
        with in_lane(lane):
            return run_seed(self.program, task, lm_ids)


def open_index(config: GenerateConfig, folder: str, fingerprint: str, shipped: list):
    """The run's retrieval server; else the index in the driver's folder where this node can read it; else the
    shipped copy, unpacked once per node (the first actor there writes it, the others find it complete)."""
    if config.retriever:
        return RemoteIndex(config.retriever)
    if is_index_of(Path(folder), fingerprint):
        return SearchIndex.load(Path(folder))
    if not shipped:
        raise FileNotFoundError(f"this node cannot read the index folder {folder}, and none was sent")
    files = shipped[0]
    if not isinstance(files, dict):  # an object ref: fetched once to this node's object store
        import ray

        files = ray.get(files)
    return SearchIndex.load(unpack_index(files, NODE_INDEXES, fingerprint))
