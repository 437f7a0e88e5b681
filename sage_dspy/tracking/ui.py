"""`sage ui`: which store to browse, and the MLflow UI server run so that stopping `sage ui` stops it all.

`mlflow ui` starts uvicorn as a child of its own; a SIGTERM to `mlflow ui` alone ends it and leaves uvicorn
listening. So the server runs in a process group of its own, every stop signal `sage ui` gets is passed to
that whole group, and `sage ui` returns only once the group is gone. A `sage ui` killed without a chance to
do so (SIGKILL) closes the pipe its group's leader watches (ui_watchdog.py), which then ends the group.

The port is checked before anything is said to be served there: a port taken by another server (maybe another
MLflow UI, of another store) is one line and exit 2, not a URL that shows someone else's server."""

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from sage_dspy.errors import SageError

PROJECT_NAME = "sage-dspy"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_SECONDS = 10.0  # how long the server may take to stop before it is killed


WATCHDOG = Path(__file__).with_name("ui_watchdog.py")


class NoStoreError(SageError, LookupError):
    """No project, and so no store, in or above the folder `sage ui` was started in."""


def project_artifacts(start: Path) -> Path:
    """The artifacts folder of the nearest folder at or above `start` that holds a store (artifacts/mlflow.db)
    or is this project (its pyproject.toml); browsing any other folder would create an empty store there."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "artifacts" / "mlflow.db").is_file() or _is_this_project(folder / "pyproject.toml"):
            return folder / "artifacts"
    raise NoStoreError(f"no sage-dspy store in {start} or any folder above it (no artifacts/mlflow.db); run "
                       "sage ui in the folder you ran sage generate or sage compile in, or set "
                       "MLFLOW_TRACKING_URI")


def _is_this_project(pyproject: Path) -> bool:
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name") == PROJECT_NAME
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def serve(command: list[str], env: dict[str, str]) -> int:
    """Run `command` in its own process group until it exits or `sage ui` is told to stop; a stop signal
    goes to the whole group. Returns the server's exit status (128 + the signal when stopped by one)."""
    # The watchdog leads the group; its stdin is a pipe whose write end only this process holds.
    server = subprocess.Popen([sys.executable, str(WATCHDOG), *command], env=env, start_new_session=True,
                              stdin=subprocess.PIPE)
    received: list[int] = []

    def pass_on(signum, frame):
        received.append(signum)
        _signal_group(server.pid, signal.SIGTERM)  # uvicorn stops cleanly on SIGTERM, not always on SIGINT

    previous = {sig: signal.signal(sig, pass_on) for sig in STOP_SIGNALS}
    try:
        status = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_group(server)
    return 128 + received[0] if received else status


def stop_group(server: subprocess.Popen) -> None:
    """End every process left in the server's group: SIGTERM, then SIGKILL after GRACE_SECONDS."""
    _signal_group(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while _group_alive(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(server):
        _signal_group(server.pid, signal.SIGKILL)
    server.wait()


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def _group_alive(server: subprocess.Popen) -> bool:
    server.poll()  # reap the leader, or it would count as alive while a zombie
    try:
        os.killpg(server.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
