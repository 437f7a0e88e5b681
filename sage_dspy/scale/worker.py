"""What one Ray actor does: build the run's program once, open the index once, then run the seeds it is sent on
threads, with at most its share of the run's calls in flight. A plain class; ray_seeds.py makes it an actor.

Each actor builds its own role LMs from the run's settings (API keys come from the environment of the node it
runs on, never through Ray), its own program (a compiled program's state is sent along, so no node needs the
driver's folder) and reads the index from the driver's index folder where that path holds it (one machine, or
a shared file system), else from a copy its node unpacks once from Ray's object store.
"""

import contextvars
import os
import tempfile
from pathlib import Path

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
    def __init__(self, config: GenerateConfig, calls: int, program_state: bytes | None, parallel_attempts: bool):
        self.config, self.parallel_attempts, self.program = config, parallel_attempts, None
        self.lms = RoleLMs.from_specs(config.lms, role_options=config.role_options,
                                      lanes=RoleLMs.lanes_for(calls), **config.lm_options)
        self.program_folder = None
        if program_state is not None:
            self.program_folder = Path(tempfile.mkdtemp(prefix="sage-program-"))
            (self.program_folder / PROGRAM_FILE).write_bytes(program_state)
        # One bound on this actor's calls in flight, shared by every seed it runs at once: each seed runs in a
        # copy of this context (what scheduler.run_seeds does with its threads).
        self._context = contextvars.copy_context()
        self._slots = call_slots(calls)
        self._context.run(self._slots.__enter__)

    def pid(self) -> int:
        return os.getpid()

    def open_index(self, folder: str, fingerprint: str) -> bool:
        """Build the program over the index in `folder` if this node can read it there (or over the run's
        retrieval server); False when it cannot, and `install_index` is to be called."""
        if self.config.retriever:
            self._build(RemoteIndex(self.config.retriever))
            return True
        if not is_index_of(Path(folder), fingerprint):
            return False
        self._build(SearchIndex.load(Path(folder)))
        return True

    def install_index(self, files: dict[str, bytes], fingerprint: str) -> None:
        """The index sent through the object store, unpacked once per node (the first actor there writes it,
        the others find it complete), then opened."""
        self._build(SearchIndex.load(unpack_index(files, NODE_INDEXES, fingerprint)))

    def _build(self, index) -> None:
        self.program = build_program(self.config, index, self.lms, self.program_folder, self.parallel_attempts)

    def run(self, lane: int, task: SeedTask, lm_ids: dict[str, str]) -> dict:
        """One seed's record (a failure is the record's error, as in a local run)."""
        return self._context.copy().run(self._run_in_lane, lane, task, lm_ids)

    def _run_in_lane(self, lane: int, task: SeedTask, lm_ids: dict[str, str]) -> dict:
        with in_lane(lane):
            return run_seed(self.program, task, lm_ids)
