"""Retrieval servers for the tests: `sage serve-index` as a real process, and a stand-in for Search-R1's own
server (search_r1/search/retrieval_server.py) with other ids and scores, documents holding `contents` only,
and fault modes (500, timeout, garbage)."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sage_dspy.offline.process import stop_process
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.server import bind, create_app, Limits

READY_TIMEOUT_S = 60.0
_SERVING = re.compile(r"at (http://\S+/retrieve)")


@dataclass
class IndexServer:
    process: subprocess.Popen
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


@contextmanager
def serve_index(corpus: Path, folder: Path, *extra: str):
    """`sage serve-index --corpus corpus --port 0` in its own process, yielded once /health answers."""
    folder.mkdir(parents=True, exist_ok=True)
    stdout, stderr = folder / "serve.out", folder / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "sage_dspy", "serve-index", "--corpus", str(corpus),
                                    "--port", "0", *extra], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   cwd=folder, env=dict(os.environ), preexec_fn=_sigint_as_in_a_terminal)
    try:
        yield IndexServer(process, _wait_for_url(stdout, stderr, process), stdout, stderr)
    finally:
        stop_process(process)


def _sigint_as_in_a_terminal() -> None:
    """SIGINT back to its default in the server, as a terminal's Ctrl-C finds it. A suite started as a
    background job (`make test &`) runs with SIGINT ignored, which children inherit: Python then installs no
    KeyboardInterrupt handler, and the server stops on SIGINT with exit 0 instead of 130."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_url(stdout: Path, stderr: Path, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        found = _SERVING.search(stdout.read_text(errors="replace"))
        if found:
            return found[1]
        if process.poll() is not None:
            raise RuntimeError(f"sage serve-index exited with {process.returncode}: {stderr.read_text()}")
        time.sleep(0.05)
    raise TimeoutError("sage serve-index printed no URL in time")


@contextmanager
def index_in_thread(index: SearchIndex, port: int = 0, limits: Limits = Limits()):
    """search/server.py's app over `index` on a thread of this process (uvicorn, as `sage serve-index` runs it):
    a second one can take the port of the first once that one has stopped. Yields the /retrieve URL."""
    import uvicorn

    sock = bind("127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(create_app(index, limits=limits), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/retrieve"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class StandIn:
    """Search-R1's endpoint, written from its retrieval_server.py: QueryRequest {queries, topk (default
    config.retrieval_topk), return_scores (default False)}; {"result": [[{"document", "score"}]]} or bare
    documents. Its documents are wiki-18 rows, {"id", "contents": '"Title"\\ntext'}, with ids of its own."""

    def __init__(self, passages, fault: str = "", delay_s: float = 0.0, fault_rate: float = 0.0,
                 fault_seed: int = 0, down_after: int | None = None):
        self.index = SearchIndex.build(passages)
        self.ids = {p.id: f"wiki-{number}" for number, p in enumerate(passages, start=1000)}
        self.fault, self.delay_s, self.requests = fault, delay_s, []
        self.retrieval_topk = 3
        # fault_rate: that share of requests (drawn from a seeded RNG) answered HTTP 500. down_after: after that
        # many requests the server is dead: every later connection is closed unanswered, as a killed server's
        # (the client sees it unreachable) until `restart()`.
        self.fault_rate, self.rng, self.down_after = fault_rate, random.Random(fault_seed), down_after
        self.dead_requests = 0

    def restart(self) -> None:
        self.down_after = None

    def is_down(self) -> bool:
        return self.down_after is not None and len(self.requests) > self.down_after

    def documents(self, query: str, topk: int) -> list[tuple[dict, float]]:
        return [({"id": self.ids[h.passage.id], "contents": f'"{h.passage.title}"\n{h.passage.text}'},
                 round(h.score * 7.5, 4)) for h in self.index.search(query, topk)]

    def reply(self, request: dict) -> dict:
        topk = request.get("topk") or self.retrieval_topk
        resp = []
        for query in request["queries"]:
            found = self.documents(query, topk)
            if request.get("return_scores", False):
                resp.append([{"document": doc, "score": score} for doc, score in found])
            else:
                resp.append([doc for doc, _ in found])
        return {"result": resp}


@contextmanager
def stand_in_server(stand_in: StandIn):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stand_in.requests.append(body)
            if stand_in.is_down():
                stand_in.dead_requests += 1
                self.close_connection = True
                return
            if stand_in.fault_rate and stand_in.rng.random() < stand_in.fault_rate:
                return self._send(500, b'{"detail": "Internal Server Error"}')
            if stand_in.fault == "timeout":
                time.sleep(stand_in.delay_s)
            if stand_in.fault == "500":
                return self._send(500, b'{"detail": "Internal Server Error"}')
            if stand_in.fault == "garbage":
                return self._send(200, b"<html>not json")
            if stand_in.fault == "wrong shape":
                return self._send(200, b'{"results": []}')
            self._send(200, json.dumps(stand_in.reply(body)).encode())

        def _send(self, status: int, data: bytes):
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout): fine
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/retrieve"
    finally:
        server.shutdown()
        server.server_close()
