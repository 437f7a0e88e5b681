"""The offline LM behind a real wire: a small OpenAI-compatible HTTP server on 127.0.0.1.

    python -m sage_dspy.offline.server --port 0 [--latency 0.01 | 0.005-0.02] [--fault-rate 0.2]
        [--faults 429,500,timeout,garbage,nomarkers] [--fault-seed 0] [--retry-after 0] [--hang 3]
        [--max-requests 10000] [--idle-exit 60] [--max-seconds 900] [--log]

It answers `POST /v1/chat/completions` with exactly the reply the in-process `OfflineEngine` gives for the same
system message, last user message, `seed` and JSON mode (`response_format`), through the same functions
(`read_prompt`, `respond`, `write_reply`). `GET /health`, `GET /v1/models` and `GET /stats` (counters) complete
it. When ready it prints one JSON line, `{"port": N}`, on stdout. For throughput windows /stats also has
`completions_in_flight`, `completion_seconds` (their integral over time), `work_done` (completions served plus
the elapsed share of the latency of those in flight) and `monotonic` (the server's clock at that read).

Knobs for tests of the client side: a per-request latency (fixed, or uniform in a range from a seeded RNG), and
injected faults at a given rate. A request's fault is drawn from an RNG seeded with --fault-seed, the client
(its User-Agent product), the request body and how many times in a row that client's body has just failed: the
faults a client meets do not depend on arrival order, concurrency or other kinds of client on the same server,
and a retry draws afresh. (A body a client gave up on mid-streak resumes that streak when sent again.)

    429        rate limited (JSON error body; `Retry-After` when --retry-after is given)
    500        server error (JSON error body; `Retry-After` when --retry-after is given)
    timeout    no reply: hold the request for --hang seconds, then close the connection
    garbage    200 whose body is not JSON
    nomarkers  200, a valid completion whose text has none of the adapter's field markers

It always stops by itself: after --idle-exit seconds without a request, after --max-seconds in all, or once
--max-requests completions were asked for (the next one gets a 503 and the server shuts down). It binds only
127.0.0.1, accepts any `Authorization` header and never logs, stores or echoes one; --log writes one JSON line
per request (method, path, status, fault, milliseconds) on stderr.
"""

import argparse
import hashlib
import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sage_dspy.offline.engine import MODEL_NAME, respond
from sage_dspy.offline.prompt import read_prompt, write_reply

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


# ------------------------------------------------------------------------------------------- the reply

def _text(content) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and part.get("type") in ("text", "input_text", None))
    return ""


def read_messages(messages: list) -> tuple[str, str]:
    """(system, last message), as the engine reads a lm15 Request (system apart, then the turns): demos in
    earlier turns are ignored."""
    messages = [m for m in messages if isinstance(m, dict)]
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    return system, _text(turns[-1].get("content")) if turns else ""


def json_mode_of(body: dict) -> bool:
    """A `response_format` other than plain text asks for JSON, as `Request.config.response_format` does."""
    fmt = body.get("response_format")
    return fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text")


def seed_of(body: dict) -> int | None:
    seed = body.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def reply_for(body: dict) -> tuple[str, dict]:
    """The offline LM's reply text and usage for a chat-completions body: the OfflineEngine's answer."""
    system, user = read_messages(body.get("messages") or [])
    prompt = read_prompt(system, user, seed=seed_of(body), json_mode=json_mode_of(body))
    text = write_reply(respond(prompt), prompt.output_types, json_reply=prompt.json_reply)
    prompt_tokens, completion_tokens = (len(system) + len(user)) // 4, len(text) // 4  # the engine's Usage
    return text, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}


def completion(body: dict, text: str, usage: dict, number: int) -> dict:
    n = body.get("n")
    choices = min(max(n, 1), 16) if isinstance(n, int) and not isinstance(n, bool) else 1
    return {
        "id": f"chatcmpl-offline-{number}", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model") or MODEL_NAME, "system_fingerprint": "sage-offline",
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                     "logprobs": None} for i in range(choices)],
        "usage": usage,
    }


def client_of(user_agent: str) -> str:
    """The product token of a User-Agent ("lm15/stdlib", "DSPy/3.4.1"): enough to tell client paths apart."""
    token = user_agent.split(" ")[0] if user_agent else "-"
    return "".join(ch for ch in token if ch.isalnum() or ch in "/._-")[:40] or "-"


def error_body(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# ------------------------------------------------------------------------------------------- the server

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
                "budget_left": max(0, config.max_requests - self.completions),
                "uptime_s": round(now - self.started, 3),
                "completions_in_flight": len(self.active), "completion_seconds": round(self.busy_seconds, 4),
                "work_done": round(self.work_done(now), 4), "monotonic": round(now, 4)}


class OfflineServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: 256 clients connecting at once must not overflow it (SYN retries)

    def __init__(self, config: ServerConfig):
        self.config = config
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
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        started = time.perf_counter()
        self.server.enter()
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
            self.server.leave()

    def do_POST(self):  # noqa: N802
        started = time.perf_counter()
        self.server.enter()
        self.number = None  # the completion's request number, once admitted (one handler serves a connection)
        try:
            status, fault = self._complete()
            self._log(status, fault, started)
        finally:
            if self.number is not None:
                with self.server.lock:
                    self.server.stats.end(self.number)
            self.server.leave()

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
            text, usage = reply_for(body)
        except Exception as error:  # a rule that breaks is a 500 the client can see, not a dead server
            self._send(500, error_body(f"offline LM failed: {type(error).__name__}: {str(error)[:200]}",
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


# ------------------------------------------------------------------------------------------- the command

def parse_latency(text: str) -> tuple[float, float]:
    """"0.01" -> (0.01, 0.01); "0.005-0.02" -> uniform in that range."""
    low, sep, high = text.partition("-")
    try:
        bounds = (float(low), float(high) if sep else float(low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"latency {text!r}: give seconds, or a range such as 0.005-0.02") from None
    if not (0 <= bounds[0] <= bounds[1] <= 600):
        raise argparse.ArgumentTypeError(f"latency {text!r}: need 0 <= low <= high <= 600 seconds")
    return bounds


def parse_faults(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"faults {text!r}: choose from {','.join(FAULT_KINDS)}")
    return kinds


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("fault rate must be within 0..1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="python -m sage_dspy.offline.server",
                                     description="The offline LM as an OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (printed)")
    parser.add_argument("--latency", type=parse_latency, default=(0.0, 0.0),
                        help="seconds per completion: fixed (0.01) or uniform in a range (0.005-0.02)")
    parser.add_argument("--fault-rate", type=_rate, default=0.0, help="share of completions that fail (0..1)")
    parser.add_argument("--faults", type=parse_faults, default=("429", "500", "timeout", "garbage"),
                        help=f"comma-separated fault kinds to draw from: {','.join(FAULT_KINDS)}")
    parser.add_argument("--fault-seed", type=int, default=0,
                        help="seed of the fault draws (keyed by request body and faults in a row) and the latency draws")
    parser.add_argument("--retry-after", type=float, default=None,
                        help="send Retry-After: SECONDS with injected 429 and 500 replies")
    parser.add_argument("--hang", type=_positive, default=3.0,
                        help="seconds a 'timeout' fault holds the request before closing the connection")
    parser.add_argument("--max-requests", type=int, default=10_000,
                        help="completions to answer before refusing with 503 and shutting down")
    parser.add_argument("--idle-exit", type=_positive, default=60.0, help="stop after this many idle seconds")
    parser.add_argument("--max-seconds", type=_positive, default=900.0, help="stop after this many seconds")
    parser.add_argument("--log", action="store_true",
                        help="one JSON line per request on stderr (method, path, status, fault, ms; never headers)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be within 0..65535")
    if args.max_requests < 1:
        parser.error("--max-requests must be at least 1")
    return ServerConfig(port=args.port, latency=args.latency, fault_rate=args.fault_rate, faults=args.faults,
                        fault_seed=args.fault_seed, retry_after=args.retry_after, hang=args.hang,
                        max_requests=args.max_requests, idle_exit=args.idle_exit, max_seconds=args.max_seconds,
                        log=args.log)


def serve(config: ServerConfig, ready=None) -> OfflineServer:
    """Run until the server stops itself (or is interrupted); `ready(server)` is called once it listens."""
    server = OfflineServer(config)
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


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)

    def announce(server: OfflineServer) -> None:
        print(json.dumps({"port": server.server_address[1]}), flush=True)

    server = serve(config, announce)
    with server.lock:
        stats = server.stats.to_dict(config)
    print(json.dumps({"stopped": server.stop_reason or "shutdown", "stats": stats}), flush=True)
    return 0


# --- for callers that run this server as a subprocess (the tests, the benchmarks)

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


if __name__ == "__main__":
    sys.exit(main())
