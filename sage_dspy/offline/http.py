"""The offline LM's HTTP server on 127.0.0.1: routes, injected faults, counters, and its own stopping.

A request's fault is drawn from an RNG seeded with --fault-seed, the client (its User-Agent product), the
request body and how many times in a row that client's body has just failed: the faults a client meets do not
depend on arrival order, concurrency or other kinds of client on the same server, and a retry draws afresh.
(A body a client gave up on mid-streak resumes that streak when sent again.) For throughput windows /stats
also has `completions_in_flight`, `completion_seconds` (their integral over time), `work_done` (completions
served plus the elapsed share of the latency of those in flight) and `monotonic` (the server's clock at that
read). The command line is server.py.
"""

import hashlib
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.offline.wire import BadRequest, completion, error_body, reply_for, response_format_of, seed_of

HOST = "127.0.0.1"
FAULT_KINDS = ("429", "500", "timeout", "garbage", "nomarkers")
COMPLETION_PATHS = ("/v1/chat/completions", "/chat/completions")
MAX_BODY = 32 * 1024 * 1024
GARBAGE_BODY = b'{"id": "chatcmpl-garbage", "object": "chat.completion", "choices": [{"index": 0, "mess'
NO_MARKERS_TEXT = "I am sorry, I cannot help with that."


@dataclass(frozen=True)
class ServerConfig:
    port: int = 0
    latency: tuple[float, float] = (0.0, 0.0)
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ("429", "500", "timeout", "garbage")
    fault_seed: int = 0
    retry_after: float | None = None
    hang: float = 3.0
    max_requests: int = 10_000
    idle_exit: float = 60.0
    max_seconds: float = 900.0
    log: bool = False


def client_of(user_agent: str) -> str:
    """The product token of a User-Agent ("lm15/stdlib", "DSPy/3.4.1"): enough to tell client paths apart."""
    token = user_agent.split(" ")[0] if user_agent else "-"
    return "".join(ch for ch in token if ch.isalnum() or ch in "/._-")[:40] or "-"



@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    requests: int = 0  # every HTTP request
    completions: int = 0  # chat-completion requests received
    served: int = 0  # completions answered with the offline LM's reply
    bad_requests: int = 0
    refused: int = 0  # over the request budget
    faults: dict = field(default_factory=lambda: {kind: 0 for kind in FAULT_KINDS})
    in_flight: int = 0
    in_flight_max: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    clients: dict = field(default_factory=dict)  # completions per User-Agent product (which client path sent it)
    authorized: int = 0  # completions that carried an Authorization header (its value is never kept)
    seeded: int = 0  # completions whose body had an integer `seed`
    response_formats: dict = field(default_factory=dict)  # completions per response_format type ("none": absent)
    # For throughput windows: completions admitted and not yet answered, {request number: (admitted at, latency)},
    # and the integral of their count over time (so mean in-flight over a window is a difference of two reads).
    active: dict = field(default_factory=dict)
    busy_seconds: float = 0.0
    busy_at: float = field(default_factory=time.monotonic)

    def _tick(self, now: float) -> None:
        self.busy_seconds += len(self.active) * (now - self.busy_at)
        self.busy_at = now

    def begin(self, number: int, latency: float) -> None:
        now = time.monotonic()
        self._tick(now)
        self.active[number] = (now, latency)

    def end(self, number: int) -> None:
        if number in self.active:
            self._tick(time.monotonic())
            del self.active[number]

    def work_done(self, now: float) -> float:
        """Completions served plus the elapsed share of the latency of each one still waiting it out: a count
        that grows smoothly, so a short window does not see 0 or N completions by the phase of N lockstep calls."""
        waiting = sum(min((now - at) / latency, 1.0) for at, latency in self.active.values() if latency > 0)
        return self.served + waiting

    def to_dict(self, config: ServerConfig) -> dict:
        now = time.monotonic()
        self._tick(now)
        return {"requests": self.requests, "completions": self.completions, "served": self.served,
                "bad_requests": self.bad_requests, "refused": self.refused,
                "faults": dict(self.faults), "faults_total": sum(self.faults.values()),
                "in_flight": self.in_flight, "in_flight_max": self.in_flight_max,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "clients": dict(self.clients), "authorized": self.authorized, "seeded": self.seeded,
                "response_formats": dict(self.response_formats),
                "budget_left": max(0, config.max_requests - self.completions),
                "uptime_s": round(now - self.started, 3),
                "completions_in_flight": len(self.active), "completion_seconds": round(self.busy_seconds, 4),
                "work_done": round(self.work_done(now), 4), "monotonic": round(now, 4)}


class OfflineServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: 256 clients connecting at once must not overflow it (SYN retries)

    def __init__(self, config: ServerConfig, reply=reply_for):
        self.config = config
        self.reply = reply  # body -> (text, usage): the offline LM's, or a recording's (replay.py)
        self.stats = Stats()
        self.lock = threading.Lock()
        self.failing: dict[str, int] = {}  # (client, request body) digest -> faults in a row it just met
        self.latency_rng = random.Random(f"latency-{config.fault_seed}")
        self.last_activity = time.monotonic()
        self.stopping = threading.Event()
        self.stop_reason = ""
        super().__init__((HOST, config.port), OfflineHandler)

    def admit(self, client: str, authorized: bool, body: dict) -> tuple[int, bool, str | None, float]:
        """(request number, within budget, fault kind or None, latency) for a new completion request."""
        config = self.config
        with self.lock:
            self.stats.completions += 1
            self.stats.authorized += authorized
            self.stats.seeded += seed_of(body) is not None
            kind = (body.get("response_format") or {}).get("type", "none")
            self.stats.response_formats[kind] = self.stats.response_formats.get(kind, 0) + 1
            self.stats.clients[client] = self.stats.clients.get(client, 0) + 1
            number = self.stats.completions
            if number > config.max_requests:
                self.stats.refused += 1
                return number, False, None, 0.0
            low, high = config.latency
            latency = self.latency_rng.uniform(low, high) if high > low else low
            fault = self._draw_fault(body, client)
            if fault:
                self.stats.faults[fault] += 1
            self.stats.begin(number, latency if fault is None else 0.0)  # a fault is no work done
            return number, True, fault, latency

    def _draw_fault(self, body: dict, client: str = "-") -> str | None:
        config = self.config
        if not (config.fault_rate > 0 and config.faults):
            return None
        keyed = json.dumps([client, body], sort_keys=True, default=str).encode("utf-8")
        digest = hashlib.sha256(keyed).hexdigest()
        in_a_row = self.failing.pop(digest, 0)
        rng = random.Random(f"{config.fault_seed}:{digest}:{in_a_row}")
        if rng.random() >= config.fault_rate:
            return None
        self.failing[digest] = in_a_row + 1
        return config.faults[rng.randrange(len(config.faults))]

    def enter(self) -> None:
        with self.lock:
            self.stats.requests += 1
            self.stats.in_flight += 1
            self.stats.in_flight_max = max(self.stats.in_flight_max, self.stats.in_flight)
            self.last_activity = time.monotonic()

    def leave(self) -> None:
        with self.lock:
            self.stats.in_flight -= 1
            self.last_activity = time.monotonic()

    def handle_error(self, request, client_address) -> None:
        """A client that went away (its own timeout) is no server error: no traceback for it."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def stop(self, reason: str) -> None:
        """Shut down from any thread but the one running serve_forever."""
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()
            threading.Thread(target=self.shutdown, daemon=True).start()

    def watch(self) -> None:
        """Stop when idle for idle_exit seconds, or after max_seconds in all."""
        config = self.config
        tick = max(0.05, min(0.5, config.idle_exit / 4))
        while not self.stopping.wait(tick):
            now = time.monotonic()
            with self.lock:
                idle = self.stats.in_flight == 0 and now - self.last_activity > config.idle_exit
            if idle:
                self.stop("idle")
            elif now - self.stats.started > config.max_seconds:
                self.stop("max-seconds")


class OfflineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers
    disable_nagle_algorithm = True  # else Nagle + delayed ACK cost ~45 ms per call on a kept-alive connection
    server: OfflineServer
    server_version = "sage-offline"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        """Silence the default access log (it is written by `_log`, which never includes headers)."""

    def _log(self, status: int, fault: str | None, started: float) -> None:
        if self.server.config.log:
            line = {"method": self.command, "path": self.path.split("?")[0], "status": status, "fault": fault,
                    "ms": round((time.perf_counter() - started) * 1000, 2)}
            print(json.dumps(line), file=sys.stderr, flush=True)

    def _send(self, status: int, payload, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._done_counting()  # before the reply leaves: its client may send the next request at once
        self.wfile.write(data)

    def _done_counting(self) -> None:
        """This request is no longer in flight (once, whichever comes first: its reply, or the handler's end)."""
        if getattr(self, "counted", False):
            self.counted = False
            if getattr(self, "number", None) is not None:
                with self.server.lock:
                    self.server.stats.end(self.number)
                self.number = None
            self.server.leave()

    def do_GET(self):  # noqa: N802
        started = time.perf_counter()
        self.server.enter()
        self.counted = True
        try:
            path = self.path.split("?")[0].rstrip("/")
            if path == "/health":
                status, payload = 200, {"status": "ok"}
            elif path in ("/v1/models", "/models"):
                status, payload = 200, {"object": "list", "data": [
                    {"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "sage-dspy"}]}
            elif path == "/stats":
                with self.server.lock:
                    status, payload = 200, self.server.stats.to_dict(self.server.config)
            else:
                status, payload = 404, error_body(f"no route GET {path}", "invalid_request_error")
            self._send(status, payload)
            self._log(status, None, started)
        finally:
            self._done_counting()

    def do_POST(self):  # noqa: N802
        started = time.perf_counter()
        self.server.enter()
        self.counted = True
        self.number = None  # the completion's request number, once admitted (one handler serves a connection)
        try:
            status, fault = self._complete()
            self._log(status, fault, started)
        finally:
            self._done_counting()

    def _complete(self) -> tuple[int, str | None]:
        path = self.path.split("?")[0].rstrip("/")
        length = self.headers.get("Content-Length")
        if not length or not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True
            return self._bad(411 if not length else 413, "a Content-Length up to 32 MiB is required")
        raw = self.rfile.read(int(length))  # always drain the body, so a kept-alive connection stays in step
        if path not in COMPLETION_PATHS:
            self._send(404, error_body(f"no route POST {path}", "invalid_request_error"))
            return 404, None
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("the body must be a JSON object with a messages list")
        except ValueError as error:
            return self._bad(400, f"invalid request body: {str(error)[:200]}")
        if body.get("stream"):
            return self._bad(400, "streaming is not supported by the offline server")
        try:
            response_format_of(body)  # a malformed one is refused before it counts as a completion
        except BadRequest as error:
            return self._bad(400, str(error))

        number, admitted, fault, latency = self.server.admit(
            client_of(self.headers.get("User-Agent", "")), "Authorization" in self.headers, body)
        self.number = number if admitted else None
        if not admitted:
            self.close_connection = True
            self._send(503, error_body(f"request budget of {self.server.config.max_requests} spent; the server "
                                       "is shutting down", "server_error", "budget_spent"))
            self.server.stop("max-requests")
            return 503, None
        if latency > 0:
            self.server.stopping.wait(latency)
        if fault == "timeout":
            self.server.stopping.wait(self.server.config.hang)
            self.close_connection = True  # nothing was written: the client sees its timeout or a closed socket
            return 0, fault
        retry = ({"Retry-After": f"{self.server.config.retry_after:g}"}
                 if self.server.config.retry_after is not None else {})
        if fault == "429":
            self._send(429, error_body("injected rate limit", "rate_limit_error", "rate_limit_exceeded"), retry)
            return 429, fault
        if fault == "500":
            self._send(500, error_body("injected server error", "server_error"), retry)
            return 500, fault
        if fault == "garbage":
            self._send(200, GARBAGE_BODY)
            return 200, fault
        try:
            text, usage = self.server.reply(body)
        except Exception as error:  # a rule that breaks is a 500 the client can see, not a dead server
            self._send(500, error_body(f"the server's reply failed: {type(error).__name__}: {str(error)[:200]}",
                                       "server_error"))
            return 500, None
        if fault == "nomarkers":
            text = NO_MARKERS_TEXT
        if fault is None:
            with self.server.lock:
                self.server.stats.served += 1
                self.server.stats.end(number)  # with served, so work_done never counts this call twice
                self.server.stats.prompt_tokens += usage["prompt_tokens"]
                self.server.stats.completion_tokens += usage["completion_tokens"]
        self._send(200, completion(body, text, usage, number))
        return 200, fault

    def _bad(self, status: int, message: str) -> tuple[int, None]:
        with self.server.lock:
            self.server.stats.bad_requests += 1
        self._send(status, error_body(message, "invalid_request_error"))
        return status, None


def serve(config: ServerConfig, ready=None, reply=reply_for) -> OfflineServer:
    """Run until the server stops itself (or is interrupted); `ready(server)` is called once it listens.
    `reply(body) -> (text, usage)` answers each completion: the offline LM's unless told otherwise."""
    server = OfflineServer(config, reply)
    threading.Thread(target=server.watch, daemon=True, name="offline-server-watchdog").start()
    if ready:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        server.stop_reason = server.stop_reason or "interrupted"
    finally:
        server.stopping.set()
        server.server_close()
    return server
