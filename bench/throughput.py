"""Throughput curve: LM calls completed per second against calls in flight, loopback server at 2 s per call.

    python -m bench.throughput --quick                 # N = 1, 64, 256; 16 s windows (about 2 min)
    python -m bench.throughput --out artifacts/bench   # N = 1, 2, 4, ..., 256; 16 s windows (about 6 min)

One `python -m sage_dspy.offline.server --latency 2` subprocess serves every measurement; a call cannot take
less than 2 s there, so N calls in flight can complete at most N / 2 calls per second (the ideal).

- pipeline: per N, `sage generate --workers N` as a subprocess (every role `openai/sage-offline` over HTTP,
  the native lm15 path, DSPy's disk cache in a fresh folder), on the bundled world cloned until it has
  enough seeds to keep N busy. Once its calls reach N in flight (or stop growing) and one more latency has
  passed, a window is read from the server's counters: calls per second (`work_done`: completions served
  plus the elapsed share of those in flight, so N calls in lockstep do not make the count jump by N at a
  window's edge), mean completions in flight (the integral `completion_seconds`), and the CPU of the
  generate and server processes. Then generate is killed.
- diagnostic (full mode): the pipeline at 256 with DSPy's per-LM connection pool (100) raised to 512.
- clients: N bare calls held in flight in this process through one `dspy.LM(openai/sage-offline, cache off)`:
  N threads looping `lm(...)` vs N asyncio tasks looping `await lm.acall(...)`, measured the same way.

Targets: pipeline calls/s >= 90% of the ideal at 64 in flight and >= 75% at 256. Writes <out>/throughput.json
and the "throughput" section of <out>/report.md. Exit status 0 when every row was measured (a target FAIL
does not change it), 1 when one could not be.
"""

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import dspy

from bench.report import machine, markdown_table, save_results
from sage_dspy.jsonl import read_jsonl
from sage_dspy.search.corpus import BUNDLED_CORPUS
from sage_dspy.offline.process import stop_process, wait_for_port

MODEL = "openai/sage-offline"
API_KEY = "sk-bench-not-a-secret"  # the server accepts any key and never keeps it
LATENCY_S = 2.0
POINTS_FULL, POINTS_QUICK = (1, 2, 4, 8, 16, 32, 64, 128, 256), (1, 64, 256)
# 10 s windows read 256 in flight low (0.73-0.75 against 0.82-0.83 with 16 s, same machine, quiet): the
# ramp's first calls (new threads opening their cache and HTTP connections) still fall in a short window.
WINDOW_FULL_S, WINDOW_QUICK_S = 16.0, 16.0
CLIENT_WINDOW_S = 6.0
# DSPy 3.4's native client (lm15) gives each dspy.LM one connection pool of 100 (its DEFAULT_MAX_CONNECTIONS;
# dspy.LM has no setting for it): the 101st concurrent call of an LM waits for a free connection. Diagnostic
# rows raise it to RAISED_POOL by patching the RouterConfig that dspy.clients.execution builds.
DSPY_POOL, RAISED_POOL = 100, 512
# Bare-client rows: (in flight, pool) with pool None = as DSPy ships it. Quick: only 256 with the pool raised,
# where threads and asyncio differ (at the shipped pool both stop at 100 in flight).
CLIENTS_FULL = ((64, None), (256, None), (256, RAISED_POOL))
CLIENTS_QUICK = ((256, RAISED_POOL),)
# Pipeline diagnostic rows (full mode): sage generate --workers N with the pool raised in its process.
DIAGNOSTICS_FULL, DIAGNOSTICS_QUICK = (256,), ()
TARGETS = {64: 0.90, 256: 0.75}  # in flight -> least ratio of calls/s to the ideal
POLL_S = 0.2
PLATEAU_S = 2 * LATENCY_S  # in flight that has not grown for two latencies has ramped up as far as it will
RAMP_LIMIT_S = 90.0
READY_TIMEOUT_S = 30.0
SECTION = "throughput"
REPO = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict:
    """The environment of the server and generate subprocesses: this checkout first on the import path (they
    run in temporary folders, and must run the code this benchmark was started from)."""
    path = os.pathsep.join(part for part in (str(REPO), os.environ.get("PYTHONPATH", "")) if part)
    return {**os.environ, "PYTHONPATH": path, **extra}


@contextlib.contextmanager
def raised_pool(max_connections: int | None):
    """Every dspy.LM engine built inside the block gets lm15 connection pools of `max_connections` (DSPy
    builds an LM's engine on its first call, from dspy.clients.execution.RouterConfig). None: no change."""
    if max_connections is None:
        yield
        return
    from dspy.clients import execution

    original = execution.RouterConfig
    execution.RouterConfig = functools.partial(original, max_connections=max_connections)
    try:
        yield
    finally:
        execution.RouterConfig = original


def generate_with_pool(max_connections: int, args: list[str]) -> None:
    """`sage <args>` in this process with lm15 pools of `max_connections` (the pipeline diagnostic's child)."""
    from sage_dspy.cli.app import main as sage

    sys.argv = ["sage", *args]
    with raised_pool(max_connections):
        sage()


# ---------------------------------------------------------------- pure parts (tests/test_bench_throughput.py)

def seeds_for(in_flight: int) -> int:
    """Seeds for `--workers N`: N to start with and as many again to replace the ones that finish early."""
    return 2 * in_flight + 8


def clone_rows(rows: list[dict], min_rows: int) -> list[dict]:
    """`rows` repeated until there are at least `min_rows`, each copy with distinct ids and titles (the corpus
    loader drops a passage whose title and text it has seen). The texts are unchanged: for throughput only
    the pattern of calls matters."""
    copies = max(1, math.ceil(min_rows / max(len(rows), 1)))
    return [{**row, "id": f"{row['id']}~{copy}", "title": row["title"] if copy == 0 else f"{row['title']} ({copy + 1})"}
            for copy in range(copies) for row in rows]


def write_corpus(path: Path, min_passages: int, source: Path = BUNDLED_CORPUS) -> int:
    """A JSONL corpus of the bundled world cloned to at least `min_passages` passages; returns their number."""
    rows = read_jsonl(source, label="corpus file")
    cloned = clone_rows(rows, min_passages)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in cloned), encoding="utf-8")
    return len(cloned)


def window(before: dict, after: dict, in_flight: int, latency: float = LATENCY_S) -> dict:
    """Throughput over the window between two /stats reads (the server's own clock, so the polling's delays do
    not count): calls per second from `work_done`, the ideal `in_flight / latency`, their ratio, and the mean
    completions in flight from `completion_seconds`."""
    seconds = after["monotonic"] - before["monotonic"]
    if seconds <= 0:
        raise ValueError("the second /stats read must come after the first")
    rate = (after["work_done"] - before["work_done"]) / seconds
    ideal = in_flight / latency
    return {"window_s": round(seconds, 3), "served": after["served"] - before["served"],
            "calls_per_s": round(rate, 3), "ideal_calls_per_s": round(ideal, 3), "ratio": round(rate / ideal, 3),
            "mean_in_flight": round((after["completion_seconds"] - before["completion_seconds"]) / seconds, 2)}


def target_rows(points: list[dict], targets: dict = TARGETS) -> list[dict]:
    """One row per target: the measured ratio at that N, PASS/FAIL, or SKIP when N was not measured."""
    by_n = {point["in_flight"]: point for point in points}
    rows = []
    for n, limit in sorted(targets.items()):
        ratio = by_n.get(n, {}).get("ratio")
        status = "SKIP" if ratio is None else ("PASS" if ratio >= limit else "FAIL")
        rows.append({"name": f"ratio_at_{n}", "in_flight": n, "limit": limit, "value": ratio, "status": status})
    return rows


def cpu_share(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds used over a window as cores busy (1.0 = one core all the time)."""
    if before is None or after is None or seconds <= 0:
        return None
    return round((after - before) / seconds, 3)


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads) from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the server and its counters

@contextlib.contextmanager
def loopback_server(folder: Path, latency: float):
    """`python -m sage_dspy.offline.server --latency L` on 127.0.0.1; yields (base URL, process)."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "server.out", folder / "server.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "sage_dspy.offline.server", "--port", "0", "--latency", f"{latency:g}",
             "--idle-exit", "120", "--max-seconds", "1800", "--max-requests", "10000000"],
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=folder, env=child_env())
    try:
        yield f"http://127.0.0.1:{wait_for_port(out, process, READY_TIMEOUT_S)}", process
    finally:
        stop_process(process)


def server_stats(base: str) -> dict:
    with urllib.request.urlopen(base + "/stats", timeout=10) as reply:
        return json.loads(reply.read())


def wait_for_ramp(base: str, in_flight: int, alive) -> dict:
    """Wait until the load's own calls (after the first call served, which is generate's preflight probe) reach
    `in_flight` completions in flight, or stop growing for PLATEAU_S; returns how it went."""
    started, served_at_start = time.monotonic(), server_stats(base)["served"]
    best, best_at = 0, None

    def outcome(reached: bool, died: bool = False) -> dict:
        return {"ramp_s": round(time.monotonic() - started, 2), "reached": reached, "died": died, "peak": best}

    while time.monotonic() - started < RAMP_LIMIT_S:
        if not alive():
            return outcome(False, died=True)
        stats = server_stats(base)
        if stats["served"] > served_at_start:  # past the probe: the in-flight count is the load's own
            now, current = time.monotonic(), stats["completions_in_flight"]
            if best_at is None or current > best:
                best, best_at = current, now
            if current >= in_flight:
                return outcome(True)
            if now - best_at >= PLATEAU_S:
                return outcome(False)
        time.sleep(POLL_S)
    return outcome(False)


def measure_window(base: str, in_flight: int, seconds: float, pids: dict, cpu_seconds=None) -> dict:
    """Settle one latency, then read the counters and the processes' CPU over `seconds` (`cpu_seconds(pid)`,
    by default `process_cpu_seconds`); the lowest number of completions in flight seen while polling is kept
    too (a dip the mean would hide)."""
    cpu_seconds = cpu_seconds or process_cpu_seconds
    time.sleep(LATENCY_S)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    before = server_stats(base)
    lowest, deadline = before["completions_in_flight"], time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(deadline - time.monotonic(), 0)))
        stats = server_stats(base)
        lowest = min(lowest, stats["completions_in_flight"])
    after = stats
    result = window(before, after, in_flight)
    result["min_in_flight_seen"] = lowest
    for name, pid in pids.items():
        result[f"{name}_cpu_cores"] = cpu_share(cpu_before[name], cpu_seconds(pid), result["window_s"])
    return result


def drain(base: str, limit_s: float = 3 * LATENCY_S + 5) -> None:
    """Wait until no completion is in flight (a killed client's last calls still run out their latency)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and server_stats(base)["completions_in_flight"]:
        time.sleep(POLL_S)


# ---------------------------------------------------------------- the pipeline: `sage generate --workers N`

def measure_pipeline(base: str, server_pid: int, in_flight: int, corpus: Path, work: Path, seconds: float,
                     pool: int | None = None) -> dict:
    """`sage generate --workers N` as a subprocess, measured over one window once N calls are in flight; with
    `pool`, its lm15 connection pools are raised to that size (a diagnostic, not the shipped pipeline)."""
    folder = work / (f"generate-{in_flight}" + ("" if pool is None else f"-pool{pool}"))
    folder.mkdir(parents=True, exist_ok=True)
    seeds = seeds_for(in_flight)
    env = child_env(OPENAI_API_KEY=API_KEY, DSPY_CACHEDIR=str(folder / "dspy-cache"), COLUMNS="200")
    for name in ("OPENAI_API_BASE", "OPENAI_BASE_URL"):  # either would send DSPy down the LiteLLM path
        env.pop(name, None)
    args = ["generate", "--corpus", str(corpus), "--seeds", str(seeds), "--workers", str(in_flight), "--no-track",
            "--fresh", "--out", str(folder / "run"), "--lm", MODEL, "--api-base", base + "/v1", "--lm-seed", "0"]
    command = [sys.executable, "-m", "sage_dspy", *args] if pool is None else [
        sys.executable, "-c", "import sys; from bench.throughput import generate_with_pool; "
        "generate_with_pool(int(sys.argv[1]), sys.argv[2:])", str(pool), *args]
    started = time.monotonic()
    with (folder / "generate.out").open("wb") as stdout, (folder / "generate.err").open("wb") as stderr:
        # cwd=work: the index lands in work/artifacts/indexes (built by the first point, reused by the others)
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=work,
                                   env=env)
    try:
        ramp = wait_for_ramp(base, in_flight, lambda: process.poll() is None)
        result = {"in_flight": in_flight, "pool": pool or DSPY_POOL, "seeds": seeds,
                  "startup_and_ramp_s": round(time.monotonic() - started, 2), "reached_in_flight": ramp["reached"],
                  "ramp_peak": ramp["peak"]}
        if ramp["died"]:
            result["error"] = f"generate exited with {process.returncode}: " + _tail(folder / "generate.err")
            return result
        result.update(measure_window(base, in_flight, seconds, {"client": process.pid, "server": server_pid}))
        if process.poll() is not None:
            result["error"] = f"generate ended during the window (exit {process.returncode}); add seeds"
    finally:
        stop_process(process)
        drain(base)
    result.update(_seed_records(folder / "run" / "records.jsonl"))
    return result


def _seed_records(path: Path) -> dict:
    """Seeds that finished before generate was stopped, and how many of them recorded an error."""
    try:
        records = read_jsonl(path, label="run records", whole_lines_only=True)  # a stopped run's torn line is left out
    except (OSError, ValueError):
        records = []
    return {"seeds_finished": len(records), "seed_errors": sum(bool(r.get("error")) for r in records)}


def _tail(path: Path, chars: int = 300) -> str:
    """The last line of a file (a traceback's error line), at most `chars` long."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line), "")[:chars]


# ---------------------------------------------------------------- bare clients: threads vs asyncio

def bare_lm(api_base: str) -> dspy.LM:
    return dspy.LM(MODEL, api_base=api_base, api_key=API_KEY, cache=False, engine="auto")


def thread_load(lm: dspy.LM, in_flight: int, stop: threading.Event) -> None:
    """`in_flight` threads, each calling `lm(...)` until `stop` is set; returns once they all ended, and raises
    the first failure of any of them (which also stops the others)."""
    failures = []

    def loop(worker: int) -> None:
        call = 0
        try:
            while not stop.is_set():
                lm(f"Reply with the word ok. ({worker}-{call})")
                call += 1
        except Exception as error:  # noqa: BLE001  (re-raised below, in the caller's thread)
            failures.append(error)
            stop.set()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(in_flight)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def async_load(lm: dspy.LM, in_flight: int, stop: threading.Event) -> None:
    """`in_flight` asyncio tasks on one event loop, each awaiting `lm.acall(...)` until `stop` is set."""
    async def loop(worker: int) -> None:
        call = 0
        while not stop.is_set():
            await lm.acall(f"Reply with the word ok. ({worker}-{call})")
            call += 1

    async def run() -> None:
        await asyncio.gather(*(loop(i) for i in range(in_flight)))

    asyncio.run(run())


def measure_client(base: str, server_pid: int, kind: str, in_flight: int, seconds: float,
                   pool: int | None = None) -> dict:
    """One kind of bare client holding `in_flight` calls through one fresh dspy.LM, in a background thread of
    this process; with `pool`, that LM's lm15 connection pool has that size."""
    load = {"threads": thread_load, "asyncio": async_load}[kind]
    stop, failures = threading.Event(), []

    def run() -> None:
        try:
            with raised_pool(pool):
                load(bare_lm(base + "/v1"), in_flight, stop)
        except Exception as error:  # noqa: BLE001  (reported in the row, not raised from a thread)
            failures.append(f"{type(error).__name__}: {str(error)[:200]}")

    runner = threading.Thread(target=run, daemon=True, name=f"bench-{kind}")
    runner.start()
    try:
        ramp = wait_for_ramp(base, in_flight, runner.is_alive)
        result = {"kind": kind, "in_flight": in_flight, "pool": pool or DSPY_POOL, "reached_in_flight": ramp["reached"],
                  "ramp_peak": ramp["peak"]}
        if not ramp["died"]:
            result.update(measure_window(base, in_flight, seconds, {"client": os.getpid(), "server": server_pid}))
    finally:
        stop.set()
        runner.join(3 * LATENCY_S + 10)
        drain(base)
    if failures:
        result["error"] = failures[0]
    return result


# ---------------------------------------------------------------- one run

def run_benchmark(points: tuple[int, ...], out: Path, *, clients: tuple = CLIENTS_FULL,
                  diagnostics: tuple[int, ...] = DIAGNOSTICS_FULL, mode: str = "custom",
                  window_s: float = WINDOW_FULL_S, client_window_s: float = CLIENT_WINDOW_S, log=print) -> dict:
    """The pipeline curve over `points`, the pipeline with raised pools at `diagnostics`, and the bare clients
    ((in flight, pool or None) pairs, threads and asyncio each); writes throughput.json and the report section."""
    out = Path(out)
    started = time.perf_counter()
    results = {"benchmark": "throughput", "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(),
               "settings": {"model": MODEL, "engine": "auto (native lm15)", "server_latency_s": LATENCY_S,
                            "points": list(points), "diagnostics": list(diagnostics),
                            "clients": [[n, pool or DSPY_POOL] for n, pool in clients], "window_s": window_s,
                            "client_window_s": client_window_s, "dspy_pool": DSPY_POOL,
                            "targets": {str(n): v for n, v in TARGETS.items()}},
               "pipeline": [], "diagnostics": [], "clients": []}
    work = Path(tempfile.mkdtemp(prefix="sage-bench-throughput-"))
    try:
        corpus = work / "corpus.jsonl"
        results["settings"]["corpus_passages"] = write_corpus(corpus, seeds_for(max((*points, *diagnostics, 1))))
        with loopback_server(work / "server", LATENCY_S) as (base, server):
            runs = [("pipeline", n, None) for n in points] + [("diagnostics", n, RAISED_POOL) for n in diagnostics]
            for part, n, pool in runs:
                log(f"{part}: sage generate --workers {n} ({seeds_for(n)} seeds"
                    + ("" if pool is None else f", lm15 pools raised to {pool}") + f"), {window_s:g} s window ...")
                results[part].append(measure_pipeline(base, server.pid, n, corpus, work, window_s, pool))
                log(f"  {_summary(results[part][-1])}")
            for n, pool in clients:
                for kind in ("threads", "asyncio"):
                    log(f"clients: {n} bare calls in flight, {kind}, pool {pool or DSPY_POOL}, "
                        f"{client_window_s:g} s window ...")
                    results["clients"].append(measure_client(base, server.pid, kind, n, client_window_s, pool))
                    log(f"  {_summary(results['clients'][-1])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["targets"] = target_rows(results["pipeline"])
    save_results(results, "throughput.json", SECTION, render_markdown, out, started)
    return results


def _summary(row: dict) -> str:
    if "ratio" not in row:
        return f"no window: {row.get('error', 'in flight never started')}"
    return (f"{row['calls_per_s']} calls/s of {row['ideal_calls_per_s']} ideal = {row['ratio']}; mean in flight "
            f"{row['mean_in_flight']}; client CPU {row.get('client_cpu_cores')} cores"
            + (f"; {row['error']}" if row.get("error") else ""))




# ---------------------------------------------------------------- rendering

def _cell(row: dict, key: str):
    value = row.get(key)
    return "-" if value is None else value


PIPELINE_COLUMNS = ["N in flight", "calls/s", "ideal N/2", "ratio", "mean in flight", "client CPU (cores)",
                    "server CPU (cores)", "startup+ramp s", "note"]


def _pipeline_row(p: dict) -> list:
    return [p["in_flight"], _cell(p, "calls_per_s"), _cell(p, "ideal_calls_per_s"), _cell(p, "ratio"),
            _cell(p, "mean_in_flight"), _cell(p, "client_cpu_cores"),
            _cell(p, "server_cpu_cores"), p.get("startup_and_ramp_s"), _note(p)]


def render_markdown(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    lines = [f"## Throughput (LM calls/s vs calls in flight, loopback server at {s['server_latency_s']:g} s per call), "
             f"{results['mode']} mode",
             f"Measured {results['started']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
             f"DSPy {m['dspy']}. "
             f"Whole run: {results['runtime_s']} s; 1-minute load average {m.get('loadavg_1m_at_start')} at start, "
             f"{m.get('loadavg_1m_at_end')} at end (above {m['cores']}, other processes took CPU from this run).", "",
             f"### Pipeline: `sage generate --workers N` ({s['window_s']:g} s windows, corpus: the bundled world "
             f"cloned to {s.get('corpus_passages')} passages)", "",
             markdown_table(PIPELINE_COLUMNS, [_pipeline_row(p) for p in results["pipeline"]])]
    if results["diagnostics"]:
        lines += ["", f"Diagnostic, not the shipped pipeline: the same with DSPy's per-LM lm15 connection pool raised "
                  f"from {s['dspy_pool']} to {results['diagnostics'][0]['pool']} (patched into the generate process):",
                  "", markdown_table(PIPELINE_COLUMNS, [_pipeline_row(p) for p in results["diagnostics"]])]
    if results["clients"]:
        lines += ["", f"### Bare clients: one `dspy.LM`, N threads calling `lm(...)` vs N asyncio tasks awaiting "
                  f"`lm.acall(...)` ({s['client_window_s']:g} s windows)", "",
                  markdown_table(["N in flight", "client", "lm15 pool", "calls/s", "ideal N/2", "ratio",
                                  "mean in flight", "client CPU (cores)", "note"],
                                 [[c["in_flight"], c["kind"], c["pool"] if c["pool"] == s["dspy_pool"] else
                                   f"{c['pool']} (raised)", _cell(c, "calls_per_s"), _cell(c, "ideal_calls_per_s"),
                                   _cell(c, "ratio"), _cell(c, "mean_in_flight"), _cell(c, "client_cpu_cores"),
                                   _note(c)] for c in results["clients"]])]
    lines += ["", "### Targets", "",
              markdown_table(["target", "rule", "value", "status"],
                             [[t["name"], f"pipeline calls/s >= {t['limit']:.0%} of N/2 at N = {t['in_flight']}",
                               _cell(t, "value"), f"**{t['status']}**"] for t in results["targets"]]),
              "", "Notes: calls/s = the server's `work_done` counter (completions served plus the elapsed share of "
              "those in flight) over the window, on the server's clock; ideal = N / latency; ratio = calls/s / ideal. "
              "Mean in flight = completions in flight averaged over the window (the server's `completion_seconds` "
              "integral; the JSON also has `min_in_flight_seen`, the lowest of reads every 0.5 s, which catches "
              "the instant N calls in lockstep turn around). CPU = utime + stime of the process over the window "
              "(/proc), in cores (1.0 = one core busy); on the client side that is the whole "
              "`sage generate` process (or this benchmark process, for bare clients). Startup+ramp = from starting "
              "`sage generate` (imports, corpus, index, the preflight probe) until N calls were in flight; the "
              f"window starts one latency later. lm15 pool = connections one `dspy.LM` may hold at once "
              f"({s['dspy_pool']} as DSPy {m['dspy']} ships it; the 101st concurrent call waits for one)."]
    return "\n".join(lines)


def _note(row: dict) -> str:
    notes = []
    if not row.get("reached_in_flight", True) and "ratio" in row:
        notes.append(f"in flight never reached N (peak {row.get('ramp_peak')})")
    if row.get("seed_errors"):
        notes.append(f"{row['seed_errors']} of {row['seeds_finished']} finished seeds failed")
    if row.get("error"):
        notes.append(row["error"])
    return "; ".join(notes) or ""


def _points(text: str) -> tuple[int, ...]:
    try:
        points = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers such as 1,16,64") from None
    if not points or any(not 1 <= n <= 256 for n in points):
        raise argparse.ArgumentTypeError(f"{text!r}: every N must be within 1..256 (sage generate --workers)")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"N = {','.join(map(str, POINTS_QUICK))}, {WINDOW_QUICK_S:g} s windows, bare clients at "
                             "256 with the pool raised only, no pipeline diagnostic")
    parser.add_argument("--points", type=_points, help="pipeline N values, e.g. 1,64,256 (overrides --quick)")
    parser.add_argument("--window", type=float, help="seconds per pipeline window (overrides --quick)")
    parser.add_argument("--no-extras", action="store_true", help="the pipeline curve only: no bare clients, no "
                        "diagnostic")
    parser.add_argument("--out", default="artifacts/bench", help="folder for throughput.json and report.md")
    args = parser.parse_args(argv)
    if args.window is not None and args.window <= 0:
        parser.error("--window must be positive")
    points = args.points or (POINTS_QUICK if args.quick else POINTS_FULL)
    clients = () if args.no_extras else (CLIENTS_QUICK if args.quick else CLIENTS_FULL)
    diagnostics = () if args.no_extras else (DIAGNOSTICS_QUICK if args.quick else DIAGNOSTICS_FULL)
    window_s = args.window or (WINDOW_QUICK_S if args.quick else WINDOW_FULL_S)
    mode = "custom" if (args.points or args.window or args.no_extras) else ("quick" if args.quick else "full")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(points, Path(args.out), clients=clients, diagnostics=diagnostics, mode=mode,
                            window_s=window_s, log=log)
    print(render_markdown(results))
    print(f"\nwrote {Path(args.out) / 'throughput.json'} and {Path(args.out) / 'report.md'}")
    ran = all("ratio" in row for row in results["pipeline"] + results["diagnostics"] + results["clients"])
    return 0 if ran else 1


if __name__ == "__main__":
    sys.exit(main())
