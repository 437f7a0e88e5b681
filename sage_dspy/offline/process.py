"""For callers that run the offline server as a subprocess (the tests, the benchmarks): wait until it is
ready, and stop it whatever happens."""

import json
import subprocess
import time
from pathlib import Path


def wait_for_port(stdout: Path, process: subprocess.Popen, timeout: float) -> int:
    """The port from the server's first stdout line (`{"port": N}`), once it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = stdout.read_text(encoding="utf-8", errors="replace").partition("\n")
        if first[1]:  # a whole first line
            return int(json.loads(first[0])["port"])
        if process.poll() is not None:
            raise RuntimeError(f"the offline server exited with {process.returncode} before it was ready")
        time.sleep(0.02)
    raise TimeoutError(f"the offline server printed no port line within {timeout:.0f} s")


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, and kill if it does not stop within 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
