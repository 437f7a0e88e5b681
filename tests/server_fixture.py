"""Start `python -m sage_dspy.offline.server` as a real subprocess on 127.0.0.1 and stop it, whatever happens.

Used by tests/test_http_lm.py (pytest finds fixtures in test modules and conftest.py, not here).
"""

import json
import os
import subprocess
import sys
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sage_dspy.offline.process import stop_process, wait_for_port

READY_TIMEOUT_S = 30.0
# Every server stops by itself even if the test run dies without tearing it down.
SAFETY = ("--idle-exit", "120", "--max-seconds", "600", "--max-requests", "20000")


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    stdout: Path
    stderr: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base + "/v1"

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=5) as reply:
            return json.loads(reply.read())

    def stats(self) -> dict:
        return self.get("/stats")

    def output(self) -> str:
        """Everything the server printed so far, stdout and stderr."""
        return self.stdout.read_text(encoding="utf-8", errors="replace") + self.stderr.read_text(
            encoding="utf-8", errors="replace")


@contextmanager
def offline_servers(folder: Path, *arg_lists: list[str], env: dict | None = None):
    """Start one server per argument list, all at once (imports overlap), and yield them ready, in order.
    They are terminated (killed if need be) when the block ends, on success, failure or interrupt."""
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        started = []
        for number, args in enumerate(arg_lists):
            stdout, stderr = folder / f"server-{number}.out", folder / f"server-{number}.err"
            with stdout.open("wb") as out, stderr.open("wb") as err:
                process = subprocess.Popen(
                    [sys.executable, "-m", "sage_dspy.offline.server", "--port", "0", *SAFETY, *args],
                    stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=folder,
                    env={**os.environ, **(env or {})})
            stack.callback(stop_process, process)
            started.append((process, stdout, stderr))
        yield [ServerProcess(process, wait_for_port(stdout, process, READY_TIMEOUT_S), stdout, stderr)
               for process, stdout, stderr in started]


@contextmanager
def in_process_server(config, **serve_options):
    """The server in a thread of this process (a real socket on 127.0.0.1, no process start), stopped at the end.
    `config` is an `offline.http.ServerConfig`; `serve_options` go to `serve` (a recording's `reply`, replay.py);
    yields the server (its port: `server.server_address[1]`)."""
    import threading

    from sage_dspy.offline import http as offline_http

    ready, holder = threading.Event(), {}
    thread = threading.Thread(target=lambda: holder.update(done=offline_http.serve(
        config, lambda server: (holder.update(server=server), ready.set()), **serve_options)), daemon=True)
    thread.start()
    assert ready.wait(10), "the in-process server did not start"
    try:
        yield holder["server"]
    finally:
        holder["server"].stop("test over")
        thread.join(10)
