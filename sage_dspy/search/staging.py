"""Where index and passage-store builds are written (`root/.building-*`, renamed into place when done), and the
sweep of those a killed build left behind.

A kill mid-build used to leave its staging folder for good: at wiki scale, gigabytes. Now each build holds an
flock on `root/.building-XXXX.lock` for its whole length, which the kernel drops when the process dies, however
it dies. Before a build starts, every staging folder whose lock can be taken (its builder is gone) is removed;
one whose lock is held (a build in progress in another process) is never touched. A staging folder with no lock
file (left by a version before this one) is removed only once nothing in it has changed for an hour: a live
build writes its chunks all along.
"""

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX, LOCK_SUFFIX = ".building-", ".lock"
UNLOCKED_IDLE_SECONDS = 3600.0


@contextlib.contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A new staging folder under `root`, locked as this process's until the block ends, then removed (unless
    the block renamed it into place). Stale ones are swept first."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale_builds(root)
    staging = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
    lock_path = staging.with_name(staging.name + LOCK_SUFFIX)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # never waits: the name is ours alone (mkdtemp)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            lock_path.unlink(missing_ok=True)  # while still held: a sweeper never sees it free with a folder


def sweep_stale_builds(root: Path) -> list[Path]:
    """Remove the staging folders under `root` whose builder is gone; returns them."""
    swept = []
    for folder in sorted(Path(root).glob(PREFIX + "*")):
        if folder.name.endswith(LOCK_SUFFIX) or not folder.is_dir():
            continue
        if _take_lock_of(folder) or (not _lock_of(folder).exists() and _idle_for(folder, UNLOCKED_IDLE_SECONDS)):
            swept.append(folder)
    return swept


def _lock_of(folder: Path) -> Path:
    return folder.with_name(folder.name + LOCK_SUFFIX)


def _take_lock_of(folder: Path) -> bool:
    """Remove `folder` if its lock file exists and no process holds it; True when removed."""
    try:
        descriptor = os.open(_lock_of(folder), os.O_RDWR)  # never created here: a missing lock is not ours to make
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return False  # a build in progress
    try:
        shutil.rmtree(folder, ignore_errors=True)
        _lock_of(folder).unlink(missing_ok=True)
    finally:
        os.close(descriptor)
    return True


def _idle_for(folder: Path, seconds: float) -> bool:
    """Nothing in `folder` (the folder itself included) modified in the last `seconds`."""
    try:
        newest = max([folder.stat().st_mtime, *(path.stat().st_mtime for path in folder.rglob("*"))])
    except OSError:  # removed meanwhile
        return False
    if time.time() - newest < seconds:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True
