"""Joining a Ray cluster within a bound. `ray.init(address=...)` with nothing that speaks Ray at the address
keeps retrying with no end the user can see; a run must instead stop with one line. Two checks: a plain TCP
connect to the address as given (seconds, and no Ray involved: Ray itself would rewrite 127.0.0.1 to this
machine's interface address and keep trying it), then `ray.init` on a helper thread, waited for at most
CONNECT_TIMEOUT_S (SAGE_RAY_CONNECT_TIMEOUT)."""

import os
import socket
import threading
import urllib.parse
from typing import Callable

from sage_dspy.errors import SageError

CONNECT_TIMEOUT_S = 60.0  # a cluster head answers in seconds; a Ray Client server may take longer to start a job
TCP_TIMEOUT_S = 5.0


class RayConnectError(SageError, RuntimeError):
    pass


def connect_timeout() -> float:
    text = os.environ.get("SAGE_RAY_CONNECT_TIMEOUT", "").strip()
    try:
        value = float(text) if text else CONNECT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise RayConnectError(f"SAGE_RAY_CONNECT_TIMEOUT={text!r} is not a number of seconds above 0; unset it "
                              f"or give one such as {CONNECT_TIMEOUT_S:g}")
    return value


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "ray://host:port"; None for "auto" (Ray finds the cluster itself)."""
    if address == "auto":
        return None
    parts = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.hostname is None or parts.port is None:
        return None
    return parts.hostname, parts.port


def check_listening(address: str, timeout: float = TCP_TIMEOUT_S) -> None:
    """Something accepts TCP connections at the address, or one line saying nothing does."""
    target = host_and_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            return
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise RayConnectError(f"--ray {address}: nothing answers at {target[0]}:{target[1]} ({reason}); start the "
                              "cluster (`ray start --head`), check the address, or run without --ray") from None


def within(seconds: float, address: str, call: Callable[[], object]) -> object:
    """`call()` (Ray's connect) on a daemon thread, waited for at most `seconds`: past that, one line. The thread
    is left behind (Ray's connect cannot be cancelled); the command ends anyway, since it is a daemon."""
    outcome: dict = {}

    def attempt() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller's thread, which decides
            outcome["error"] = error

    thread = threading.Thread(target=attempt, name="sage-ray-connect", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise RayConnectError(f"--ray {address}: no Ray cluster answered within {seconds:g} s; check that the "
                              "address is a Ray head (port 6379) or Ray Client server (ray://host:10001), or raise "
                              "SAGE_RAY_CONNECT_TIMEOUT")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
