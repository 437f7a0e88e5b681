"""`--ray ADDRESS` is bounded: nothing listening is one line within seconds, and a listener that never speaks
Ray is one line after SAGE_RAY_CONNECT_TIMEOUT. Ray itself is never reached here: given 127.0.0.1 it would
rewrite the address to this machine's interface address and keep trying it, so every test replaces Ray with a
stand-in that fails the test if it is asked to connect anywhere unexpected."""

import socket
import threading

import pytest

from sage_dspy.scale import ray_seeds
from sage_dspy.scale.ray_connect import RayConnectError, check_listening, connect_timeout, host_and_port
from tests.cli_helpers import assert_one_line_error, invoke


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_listener():
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


class BlockingRay:
    """Ray as it behaves against a listener that is no Ray head: init never returns."""

    def __init__(self):
        self.release, self.addresses = threading.Event(), []

    def is_initialized(self):
        return False

    def init(self, address=None, **options):
        self.addresses.append(address)
        self.release.wait(30)


def forbid_ray():
    raise AssertionError("Ray must not be reached for an address where nothing listens")


@pytest.mark.parametrize("address, expected", [("127.0.0.1:6379", ("127.0.0.1", 6379)),
                                               ("ray://head:10001", ("head", 10001)), ("auto", None)])
def test_addresses_are_read_as_host_and_port(address, expected):
    assert host_and_port(address) == expected


def test_nothing_listening_is_one_line_without_ray(monkeypatch):
    port = closed_port()
    monkeypatch.setattr(ray_seeds, "import_ray", forbid_ray)
    with pytest.raises(RayConnectError, match=f"nothing answers at 127.0.0.1:{port}"):
        ray_seeds.RayEngine(f"127.0.0.1:{port}").connect()
    with pytest.raises(RayConnectError, match="nothing answers"):
        check_listening(f"ray://127.0.0.1:{port}")


def test_a_listener_that_never_speaks_ray_is_bounded(monkeypatch, silent_listener):
    stand_in = BlockingRay()
    monkeypatch.setattr(ray_seeds, "import_ray", lambda: stand_in)
    monkeypatch.setenv("SAGE_RAY_CONNECT_TIMEOUT", "0.5")
    try:
        with pytest.raises(RayConnectError, match="no Ray cluster answered within 0.5 s"):
            ray_seeds.RayEngine(f"127.0.0.1:{silent_listener}").connect()
    finally:
        stand_in.release.set()
    assert stand_in.addresses == [f"127.0.0.1:{silent_listener}"]


@pytest.mark.parametrize("value", ["0", "-3", "inf", "soon"])
def test_a_bad_connect_timeout_is_refused(monkeypatch, value):
    monkeypatch.setenv("SAGE_RAY_CONNECT_TIMEOUT", value)
    with pytest.raises(RayConnectError, match="SAGE_RAY_CONNECT_TIMEOUT"):
        connect_timeout()


def test_generate_with_nothing_at_the_ray_address_is_one_line(workdir, tiny_corpus_file, monkeypatch):
    monkeypatch.setattr(ray_seeds, "import_ray", forbid_ray)
    port = closed_port()
    result = invoke("generate", "--no-track", "--corpus", tiny_corpus_file, "--seeds", "1", "--ray",
                    f"127.0.0.1:{port}", "--out", workdir / "run")
    assert_one_line_error(result, f"nothing answers at 127.0.0.1:{port}")
