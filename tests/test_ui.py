"""`sage ui`: the project's store from any folder below it, and a SIGTERM that stops the whole server."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import assert_one_line_error, invoke
from sage_dspy.tracking import store
from sage_dspy.tracking.ui import project_artifacts

START_SECONDS = 90  # mlflow ui imports a lot before it listens


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = set(), [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.add(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie no longer runs or listens; only its parent's reaping is left


def test_the_store_is_found_from_a_folder_below_the_project(tmp_path, isolated_mlflow):
    store.configure_tracking(root=tmp_path / "artifacts")
    below = tmp_path / "notes" / "deep"
    below.mkdir(parents=True)
    assert project_artifacts(below) == tmp_path / "artifacts"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "pyproject.toml").write_text('[project]\nname = "sage-dspy"\n')
    assert project_artifacts(tmp_path / "code") == tmp_path / "code" / "artifacts"  # a fresh clone, no store yet
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "pyproject.toml").write_text('[project]\nname = "another-project"\n')
    assert project_artifacts(tmp_path / "other") == tmp_path / "artifacts"


def test_ui_outside_any_project_is_refused_and_creates_no_store(workdir, isolated_mlflow):
    result = invoke("ui", "--port", free_port())
    assert_one_line_error(result, "no sage-dspy store in")
    assert list(workdir.iterdir()) == []


def test_sigterm_stops_the_server_and_every_child_from_a_folder_below_the_project(tmp_path, isolated_mlflow):
    store.configure_tracking(root=tmp_path / "artifacts")
    below = tmp_path / "sub"
    below.mkdir()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    ui = subprocess.Popen([sys.executable, "-m", "sage_dspy", "ui", "--port", str(port)], cwd=below, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not listening(port) and ui.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert listening(port), ui.stdout.read() if ui.poll() is not None else "not listening in time"
        children = descendants(ui.pid)
        assert children  # mlflow ui, and uvicorn below it
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)
        output = ui.stdout.read()
    finally:
        if ui.poll() is None:
            ui.kill()
    assert not listening(port)
    assert not [pid for pid in children if alive(pid)], output
    # the project's store, not ./artifacts (rich may wrap the path)
    assert str(tmp_path / "artifacts" / "mlflow.db") in "".join(output.split())
    assert not (below / "artifacts").exists()


def test_sigkill_of_sage_ui_still_stops_the_server_and_every_child(tmp_path, isolated_mlflow):
    """SIGKILL gives `sage ui` no chance to stop anything: the watchdog leading the server's group sees its pipe
    close and ends the group."""
    store.configure_tracking(root=tmp_path / "artifacts")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    ui = subprocess.Popen([sys.executable, "-m", "sage_dspy", "ui", "--port", str(port)], cwd=tmp_path, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not listening(port) and ui.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert listening(port)
        children = descendants(ui.pid)
        ui.send_signal(signal.SIGKILL)
        ui.wait(timeout=30)
        deadline = time.monotonic() + 30  # the server's own SIGTERM handling, then SIGKILL after 10 s at most
        while (listening(port) or any(alive(pid) for pid in children)) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        if ui.poll() is None:
            ui.kill()
    assert not listening(port)
    assert not [pid for pid in children if alive(pid)]
