"""Taking a port on this machine: one bind for every server sage starts, so a taken port is one line naming the
fix wherever it happens (`sage serve-index`, `sage ui`) instead of a server's traceback-like exit."""

import errno
import socket

from sage_dspy.errors import SageError


class PortInUseError(SageError, OSError):
    pass


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound as the servers bind (SO_REUSEADDR, as uvicorn sets it: a port left in
    TIME_WAIT is free, one another process listens on is not)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use; stop the program using it or pass "
                                 "another --port") from None
        raise PortInUseError(f"cannot listen on {host}:{port} ({error.strerror}); pass another --host or "
                             "--port") from None
    return sock
