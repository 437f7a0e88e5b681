"""The offline LM behind a real wire: a small OpenAI-compatible HTTP server on 127.0.0.1.

    python -m sage_dspy.offline.server --port 0 [--latency 0.01 | 0.005-0.02] [--fault-rate 0.2]
        [--faults 429,500,timeout,garbage,nomarkers] [--fault-seed 0] [--retry-after 0] [--hang 3]
        [--max-requests 10000] [--idle-exit 60] [--max-seconds 900] [--log]

It answers `POST /v1/chat/completions` with exactly the reply the in-process `OfflineEngine` gives for the same
system message, last user message, `seed` and `response_format` (wire.py: JSON when asked, checked against a
schema when one is given, a malformed one refused with 400). `GET /health`,
`GET /v1/models` and `GET /stats` (counters) complete it. When ready it prints one JSON line, `{"port": N}`, on
stdout; when it stops, one line with the reason and the counters.

Knobs for tests of the client side: a per-request latency (fixed, or uniform in a range from a seeded RNG), and
injected faults at a given rate, drawn so that what a client meets does not depend on arrival order (http.py):

    429        rate limited (JSON error body; `Retry-After` when --retry-after is given)
    500        server error (JSON error body; `Retry-After` when --retry-after is given)
    timeout    no reply: hold the request for --hang seconds, then close the connection
    garbage    200 whose body is not JSON
    nomarkers  200, a valid completion whose text has none of the adapter's field markers

It always stops by itself: after --idle-exit seconds without a request, after --max-seconds in all, or once
--max-requests completions were asked for (the next one gets a 503 and the server shuts down). It binds only
127.0.0.1, accepts any `Authorization` header and never logs, stores or echoes one; --log writes one JSON line
per request (method, path, status, fault, milliseconds) on stderr.

The server itself is http.py; helpers to run it as a subprocess are process.py.
"""

import argparse
import json
import sys

from sage_dspy.offline.http import FAULT_KINDS, OfflineServer, ServerConfig, serve


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


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)

    def announce(server: OfflineServer) -> None:
        print(json.dumps({"port": server.server_address[1]}), flush=True)

    server = serve(config, announce)
    with server.lock:
        stats = server.stats.to_dict(config)
    print(json.dumps({"stopped": server.stop_reason or "shutdown", "stats": stats}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
