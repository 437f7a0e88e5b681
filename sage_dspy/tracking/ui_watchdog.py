"""Run a command, and end its whole process group once the parent's pipe on stdin closes.

`sage ui` starts this (by path: no package import, so it is up at once) as the leader of a new process group,
holding the write end of the pipe on its stdin and writing nothing. The pipe closes when `sage ui` ends, however
it ends: a SIGKILL gives it no chance to stop the MLflow server, but the kernel closes its files all the same.
Then every process of the group (`mlflow ui`, and the uvicorn server it started) gets SIGTERM and, after a
grace period, SIGKILL. A pipe, unlike Linux's PR_SET_PDEATHSIG, also works on macOS and reaches grandchildren.

usage: python ui_watchdog.py COMMAND [ARG...]; exits with the command's status (128 + N if signal N ended it).
"""

import os
import signal
import subprocess
import sys
import threading

GRACE_SECONDS = 10.0
_ending = threading.Event()  # set once the group is being ended: then this process leaves last


def _end_group(command: subprocess.Popen) -> None:
    _ending.set()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM is for the others; this one finishes
    os.killpg(0, signal.SIGTERM)
    try:
        command.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    os.killpg(0, signal.SIGKILL)  # whatever is left, this process included


def _exit_with(command: subprocess.Popen) -> None:
    status = command.wait()
    if not _ending.is_set():  # the server ended by itself: so does this process
        os._exit(128 - status if status < 0 else status)


def main(argv: list[str]) -> int:
    command = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    threading.Thread(target=_exit_with, args=(command,), daemon=True).start()
    while sys.stdin.buffer.read1(4096):  # nothing is ever written: only the end of the pipe matters
        pass
    _end_group(command)  # on the main thread: only it may set the SIGTERM handler
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
