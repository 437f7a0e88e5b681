"""SIGTERM handled as Ctrl-C: what `timeout`, schedulers and `kill` send is an interrupt like any other.

By default SIGTERM ends Python at once, silently: no "N seeds saved, resume with ..." line, and the MLflow run
stays RUNNING. Inside `sigterm_as_interrupt()` it raises `Terminated`, a KeyboardInterrupt, so every handler of
Ctrl-C (the resume line, the MLflow run ended KILLED) handles it too; the exit code then says which it was.
"""

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator

SIGINT_EXIT, SIGTERM_EXIT = 128 + signal.SIGINT, 128 + signal.SIGTERM  # the shell's codes: 130 and 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python was when it came."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the block (main thread only: elsewhere Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_exit_code(interrupt: KeyboardInterrupt) -> int:
    return SIGTERM_EXIT if isinstance(interrupt, Terminated) else SIGINT_EXIT


def resume_command(argv: list[str] | None, command: str) -> str:
    """The command line that resumes an interrupted run: what was typed after `sage`, without --fresh."""
    return shlex.join(["sage", *(arg for arg in (argv or [command]) if arg != "--fresh")])
