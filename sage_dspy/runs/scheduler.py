"""Seeds run concurrently: a thread per seed up to `workers`, at most `workers` LM calls in flight, no new seed
once the budget is spent or the breaker has tripped, and every seed's outcome a record (a failure is data, never an exception)."""

import contextvars
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from sage_dspy.breaker import tripped as breaker_tripped
from sage_dspy.lm.inflight import call_slots, in_lane
from sage_dspy.lm.roles import failed_role
from sage_dspy.method.failures import error_kind, error_message, raw_replies, raw_reply
from sage_dspy.lm.usage import counting_usage
from sage_dspy.runs.budget import CallBudget
from sage_dspy.runs.ledger import spending_on
from sage_dspy.runs.records import record_for
from sage_dspy.runs.seeds import SeedTask, key_of


def run_seeds(program, tasks: list[SeedTask], lm_ids: dict[str, str], workers: int, budget: CallBudget):
    """Yield each seed's record as it finishes. Seeds run on `workers` threads, and at most `workers` LM
    calls are in flight however many attempts run at once (the bound a provider's rate limit needs). No seed
    starts once the budget is spent or the run's breaker has tripped (sage_dspy.breaker). The program is shared: its modules hold no per-call state, and role LMs
    are set per call through dspy.context."""
    workers, pending = max(workers, 1), enumerate(tasks)
    with call_slots(workers), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sage-seed") as pool:
        running = set()
        while True:
            while len(running) < workers and budget.allows_more() and not breaker_tripped():
                number, task = next(pending, (None, None))
                if task is None:
                    break
                # A copy of this context per seed carries the call slots (and any dspy.context) into the thread;
                # seeds take the role LMs' connection lanes in turn.
                running.add(pool.submit(contextvars.copy_context().run, _run_in_lane, number, program, task, lm_ids))
            if not running:
                return
            try:
                finished = next(as_completed(running))
            except KeyboardInterrupt:
                _say_waiting(len(running))
                raise  # leaving the pool's block waits for the running seeds, and the caller saves them
            running.remove(finished)
            record = finished.result()  # run_seed records failures itself; it does not raise
            budget.charge(record)
            yield record


def _say_waiting(running: int) -> None:
    """Ctrl-C cannot cut a seed short mid-call: say why the command does not stop at once. Written here, where
    the wait happens, on stderr like the CLI's other interruption lines."""
    print(f"interrupted: waiting for the {running} running seed(s) to finish their LM calls; they are saved, "
          "then the command stops", file=sys.stderr, flush=True)


def _run_in_lane(lane: int, program, task: SeedTask, lm_ids: dict[str, str]) -> dict:
    with in_lane(lane):
        return run_seed(program, task, lm_ids)


def run_seed(program, task: SeedTask, lm_ids: dict[str, str]) -> dict:
    """One seed through the loop; a failure becomes the record's `error`, never an exception. Every paid call
    goes to the run's spend ledger as it returns (runs/ledger.py), where one is active."""
    started, prediction, failed = time.perf_counter(), None, {}
    with counting_usage() as spent, spending_on(key_of(task)):
        try:
            prediction = program(seed=task.passage, target_searches=task.target, answer_type=task.answer_type)
        except Exception as failure:
            failed = {"error": error_message(failure), "error_kind": error_kind(failure),
                      "failed_in": failed_role(failure), "raw_reply": raw_reply(failure),
                      "rounds": getattr(failure, "rounds", ()),  # a void round's (loop.ServiceUnavailable)
                      "raw_replies": raw_replies(failure)}
    record = record_for(task, prediction, lm_ids, **failed)
    record.update(spent, seconds=round(time.perf_counter() - started, 3))
    return record
