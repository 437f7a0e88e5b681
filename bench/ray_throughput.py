"""Plain vs Ray: LM calls per second against calls in flight, `sage generate --workers N` with and without `--ray`,
loopback server at 2 s per call, and the start-up cost of each.

    python -m bench.ray_throughput --quick                 # N = 64, 512; 12 s windows (about 5 min)
    python -m bench.ray_throughput --out artifacts/bench   # N = 64, 256, 512, 1024; 16 s windows (about 12 min)

One `python -m sage_dspy.offline.server --latency 2` subprocess serves every measurement (bench/throughput.py's
server, corpus and window: N calls in flight can complete at most N / 2 calls per second, the ideal). Per N,
the plain run (one process, N threads) then the Ray run (`--ray`: a local cluster of 2 CPUs, so 2 actors of
N / 2 calls each) are measured alike; the plain run at the same N is the baseline of the same run.

- ratio = calls/s / ideal; `ray / plain` = the Ray ratio over the plain one at that N.
- client CPU = utime + stime over the window of the generate process and every process under it (for Ray: the
  driver, Ray's GCS and raylet, the actors), in cores; client CPU per call = those CPU seconds / calls served.
  Cores needed for the ideal = CPU per call x N / 2: a run cannot reach the ideal on fewer cores than that.
- start-up: seconds from starting `sage generate` to the first LM call (the preflight probe) and to the first
  call of a seed (for Ray: after the cluster and its actors are up).

Target: Ray at 512 in flight >= 0.9 of the ideal. Writes <out>/ray_throughput.json and the "ray_throughput"
section of <out>/report.md. Exit status 0 when every row was measured (a target FAIL does not change it), 1
when Ray is not installed or a row could not be measured.
"""

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import machine, markdown_table, save_results
from bench.throughput import (API_KEY, LATENCY_S, MODEL, POLL_S, _cell, _note, _seed_records, _tail, child_env,
                              drain, loopback_server, measure_window, process_cpu_seconds, seeds_for, server_stats,
                              wait_for_ramp, write_corpus)
from sage_dspy.offline.process import stop_process

POINTS_FULL, POINTS_QUICK = (64, 256, 512, 1024), (64, 512)
WINDOW_FULL_S, WINDOW_QUICK_S = 16.0, 12.0
TARGET_N, TARGET_RATIO = 512, 0.9
FIRST_CALL_LIMIT_S = 120.0
SECTION = "ray_throughput"
MODES = ("plain", "ray")


# ---------------------------------------------------------------- pure parts (tests/test_bench_ray.py)

def children_of(pid: int, parents: dict[int, int]) -> set[int]:
    """Every process under `pid` (its children, theirs, ...), from a {pid: parent pid} map."""
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier and child not in found}
        found |= frontier
    return found


def per_call(row: dict) -> dict:
    """Client CPU milliseconds per call, and the cores that CPU per call needs to serve the ideal N / latency."""
    cores, rate = row.get("client_cpu_cores"), row.get("calls_per_s")
    if cores is None or not rate:
        return {}
    seconds_per_call = cores / rate
    return {"client_cpu_ms_per_call": round(1000 * seconds_per_call, 2),
            "cores_for_ideal": round(seconds_per_call * row["ideal_calls_per_s"], 2)}


def versus(rows: list[dict]) -> list[dict]:
    """Per N measured in both modes: the Ray ratio over the plain one."""
    by = {(row["mode"], row["in_flight"]): row for row in rows}
    out = []
    for n in sorted({row["in_flight"] for row in rows}):
        plain, ray = by.get(("plain", n), {}), by.get(("ray", n), {})
        if plain.get("ratio") and ray.get("ratio") is not None:
            out.append({"in_flight": n, "plain": plain["ratio"], "ray": ray["ratio"],
                        "ray_over_plain": round(ray["ratio"] / plain["ratio"], 3)})
    return out


def target_row(rows: list[dict]) -> dict:
    ratio = next((row.get("ratio") for row in rows if row["mode"] == "ray" and row["in_flight"] == TARGET_N), None)
    status = "SKIP" if ratio is None else ("PASS" if ratio >= TARGET_RATIO else "FAIL")
    return {"name": f"ray_ratio_at_{TARGET_N}", "limit": TARGET_RATIO, "value": ratio, "status": status}


# ---------------------------------------------------------------- processes

def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return parents


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of `pid` and every process under it now (Ray's daemons and actors, for a Ray run)."""
    own = process_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(process_cpu_seconds(child) or 0.0 for child in children_of(pid, _parents()))


def stop_tree(process: subprocess.Popen) -> None:
    """Stop generate and then whatever it started that outlived it (a Ray cluster's daemons), by their pids."""
    started = children_of(process.pid, _parents())
    stop_process(process)
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for_first_calls(base: str, started: float, alive) -> dict:
    """Seconds from `started` until the server admitted the first call (generate's preflight probe) and the
    second (the first call of a seed)."""
    at, before = {}, server_stats(base)["completions"]
    while len(at) < 2 and time.monotonic() - started < FIRST_CALL_LIMIT_S and alive():
        admitted = server_stats(base)["completions"] - before
        if admitted >= 1:
            at.setdefault("first_call_s", round(time.monotonic() - started, 2))
        if admitted >= 2:
            at.setdefault("first_seed_call_s", round(time.monotonic() - started, 2))
        time.sleep(POLL_S / 2)
    return at


# ---------------------------------------------------------------- dispatch: our loop vs ray.util.ActorPool

DISPATCH_SEEDS, DISPATCH_IN_FLIGHT, DISPATCH_SEED_S = 2000, 256, 0.25


class _SleepyWorker:
    """A stand-in for scale.worker.SeedWorker: `run` takes DISPATCH_SEED_S and returns a record-sized dict."""

    def run(self, lane, task, lm_ids):
        time.sleep(DISPATCH_SEED_S)
        return {"seed_id": str(task), "lm_calls": 0, "rounds": [], "question": "x" * 400}


def measure_dispatch() -> list[dict]:
    """Seeds per second and driver CPU per seed through scale.ray_seeds' loop (`ray.wait` over threaded actors
    holding their share each) and through `ray.util.ActorPool` (each actor listed once per seed it may hold),
    2 actors, DISPATCH_IN_FLIGHT seeds in flight, DISPATCH_SEED_S per seed: the ideal is in flight / seed time."""
    import ray
    from ray.util import ActorPool

    from sage_dspy.runs.budget import CallBudget
    from sage_dspy.scale.ray_seeds import Slot, _Pool, shares

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="WARNING")
    rows = []
    try:
        split = shares(DISPATCH_IN_FLIGHT, 2)
        actors = [ray.remote(num_cpus=1)(_SleepyWorker).options(max_concurrency=share + 1).remote() for share in split]
        ray.get([actor.run.remote(0, "warm", {}) for actor in actors])
        for name in ("ray.wait loop (scale.ray_seeds)", "ray.util.ActorPool"):
            cpu, started = time.process_time(), time.perf_counter()
            if name.startswith("ray.wait"):
                pool = _Pool(ray, [Slot(actor, share) for actor, share in zip(actors, split)], {})
                tasks = iter(range(1, DISPATCH_SEEDS))
                done = sum(1 for _ in pool.run(0, tasks, CallBudget(None)))
            else:
                listed = [actor for actor, share in zip(actors, split) for _ in range(share)]
                done = sum(1 for _ in ActorPool(listed).map_unordered(
                    lambda actor, seed: actor.run.remote(seed, seed, {}), range(DISPATCH_SEEDS)))
            seconds = time.perf_counter() - started
            ideal = DISPATCH_IN_FLIGHT / DISPATCH_SEED_S
            rows.append({"loop": name, "seeds": done, "seeds_per_s": round(done / seconds, 1),
                         "ideal_seeds_per_s": ideal, "ratio": round(done / seconds / ideal, 3),
                         "driver_cpu_ms_per_seed": round(1000 * (time.process_time() - cpu) / done, 3)})
    finally:
        ray.shutdown()
    return rows


# ---------------------------------------------------------------- one measurement

def measure(base: str, server_pid: int, mode: str, in_flight: int, corpus: Path, work: Path, seconds: float) -> dict:
    folder = work / f"{mode}-{in_flight}"
    folder.mkdir(parents=True, exist_ok=True)
    env = child_env(OPENAI_API_KEY=API_KEY, DSPY_CACHEDIR=str(folder / "dspy-cache"), COLUMNS="200",
                    RAY_USAGE_STATS_ENABLED="0")
    for name in ("OPENAI_API_BASE", "OPENAI_BASE_URL", "RAY_ADDRESS"):
        env.pop(name, None)
    command = [sys.executable, "-m", "sage_dspy", "generate", "--corpus", str(corpus), "--seeds",
               str(seeds_for(in_flight)), "--workers", str(in_flight), "--no-track", "--fresh", "--out",
               str(folder / "run"), "--lm", MODEL, "--api-base", base + "/v1", "--lm-seed", "0",
               *(["--ray"] if mode == "ray" else [])]
    started = time.monotonic()
    with (folder / "generate.out").open("wb") as stdout, (folder / "generate.err").open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=work,
                                   env=env)
    alive = lambda: process.poll() is None  # noqa: E731
    row = {"mode": mode, "in_flight": in_flight, "seeds": seeds_for(in_flight)}
    try:
        row.update(wait_for_first_calls(base, started, alive))
        ramp = wait_for_ramp(base, in_flight, alive)
        row.update(startup_and_ramp_s=round(time.monotonic() - started, 2), reached_in_flight=ramp["reached"],
                   ramp_peak=ramp["peak"])
        if ramp["died"] or not alive():
            row["error"] = f"generate exited with {process.returncode}: " + _tail(folder / "generate.err")
            return row
        row.update(measure_window(base, in_flight, seconds, {"client": process.pid, "server": server_pid},
                                  cpu_seconds=tree_cpu_seconds))
        row["client_processes"] = 1 + len(children_of(process.pid, _parents()))
        row.update(per_call(row))
        if not alive():
            row["error"] = f"generate ended during the window (exit {process.returncode}); add seeds"
    finally:
        stop_tree(process)
        drain(base)
    row.update(_seed_records(folder / "run" / "records.jsonl"))
    return row


def run_benchmark(points: tuple[int, ...], out: Path, *, window_s: float, mode: str, log=print) -> dict:
    started = time.perf_counter()
    results = {"benchmark": SECTION, "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(), "settings": {"model": MODEL, "server_latency_s": LATENCY_S, "points": list(points),
                                                   "window_s": window_s, "ray_local_cpus": 2,
                                                   "target": {"in_flight": TARGET_N, "ratio": TARGET_RATIO}},
               "rows": []}
    work = Path(tempfile.mkdtemp(prefix="sage-bench-ray-"))
    try:
        corpus = work / "corpus.jsonl"
        results["settings"]["corpus_passages"] = write_corpus(corpus, seeds_for(max(points)))
        with loopback_server(work / "server", LATENCY_S) as (base, server):
            for n in points:
                for kind in MODES:
                    log(f"{kind}: sage generate --workers {n}{' --ray' if kind == 'ray' else ''}, "
                        f"{window_s:g} s window ...")
                    results["rows"].append(measure(base, server.pid, kind, n, corpus, work, window_s))
                    log(f"  {_summary(results['rows'][-1])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"dispatch: {DISPATCH_SEEDS} seeds of {DISPATCH_SEED_S:g} s, {DISPATCH_IN_FLIGHT} in flight on 2 actors, "
        "our loop vs ray.util.ActorPool ...")
    results["dispatch"] = measure_dispatch()
    results["versus"] = versus(results["rows"])
    results["target"] = target_row(results["rows"])
    save_results(results, "ray_throughput.json", SECTION, render_markdown, out, started)
    return results


def _summary(row: dict) -> str:
    if "ratio" not in row:
        return f"no window: {row.get('error', 'in flight never reached')}"
    return (f"{row['calls_per_s']} calls/s of {row['ideal_calls_per_s']} = {row['ratio']}; client CPU "
            f"{row.get('client_cpu_cores')} cores, {row.get('client_cpu_ms_per_call')} ms/call; first seed call at "
            f"{row.get('first_seed_call_s')} s")


# ---------------------------------------------------------------- rendering

COLUMNS = ["N in flight", "mode", "calls/s", "ideal N/2", "ratio", "mean in flight", "client CPU (cores)",
           "client CPU ms/call", "cores for ideal", "client processes", "first call s", "first seed call s", "note"]


def render_markdown(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    rows = [[r["in_flight"], r["mode"], _cell(r, "calls_per_s"), _cell(r, "ideal_calls_per_s"), _cell(r, "ratio"),
             _cell(r, "mean_in_flight"), _cell(r, "client_cpu_cores"), _cell(r, "client_cpu_ms_per_call"),
             _cell(r, "cores_for_ideal"), _cell(r, "client_processes"), _cell(r, "first_call_s"),
             _cell(r, "first_seed_call_s"), _note(r)] for r in results["rows"]]
    t = results["target"]
    return "\n".join([
        f"## Plain vs Ray (`sage generate --workers N` vs the same with `--ray`), loopback server at "
        f"{s['server_latency_s']:g} s per call, {results['mode']} mode",
        f"Measured {results['started']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, DSPy {m['dspy']}; "
        f"Ray's local cluster: {s['ray_local_cpus']} CPUs (2 actors). Whole run: {results['runtime_s']} s; "
        f"1-minute load average {m.get('loadavg_1m_at_start')} at start, {m.get('loadavg_1m_at_end')} at end.", "",
        markdown_table(COLUMNS, rows), "",
        markdown_table(["N in flight", "plain ratio", "Ray ratio", "Ray / plain"],
                       [[v["in_flight"], v["plain"], v["ray"], v["ray_over_plain"]] for v in results["versus"]]),
        "", f"Dispatch alone ({DISPATCH_SEEDS} stand-in seeds of {DISPATCH_SEED_S:g} s, {DISPATCH_IN_FLIGHT} in "
            "flight on 2 threaded actors; how the actors are fed, not the LM calls):", "",
        markdown_table(["loop", "seeds/s", "ideal", "ratio", "driver CPU ms/seed"],
                       [[d["loop"], d["seeds_per_s"], d["ideal_seeds_per_s"], d["ratio"], d["driver_cpu_ms_per_seed"]]
                        for d in results.get("dispatch", [])]),
        "", markdown_table(["target", "rule", "value", "status"],
                           [[t["name"], f"Ray calls/s >= {t['limit']:.0%} of N/2 at N = {TARGET_N}", _cell(t, "value"),
                             f"**{t['status']}**"]]),
        "", "Client CPU counts the generate process and every process under it (Ray's GCS, raylet and actors). "
            "Cores for ideal = client CPU per call x N / 2: where it exceeds the machine's cores (less what the "
            "server takes), no scheduler on this machine can reach the ideal at that N."])


def _points(text: str) -> tuple[int, ...]:
    try:
        points = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers such as 64,512") from None
    if not points or any(not 2 <= n <= 1024 for n in points):
        raise argparse.ArgumentTypeError(f"{text!r}: every N must be within 2..1024 (sage generate --workers)")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ray_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"N = {','.join(map(str, POINTS_QUICK))}, {WINDOW_QUICK_S:g} s windows")
    parser.add_argument("--points", type=_points, help="N values, e.g. 64,512 (overrides --quick)")
    parser.add_argument("--window", type=float, help="seconds per window (overrides --quick)")
    parser.add_argument("--out", default="artifacts/bench", help="folder for ray_throughput.json and report.md")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("ray") is None:
        print("bench.ray_throughput needs Ray: pip install 'sage-dspy[ray]'", file=sys.stderr)
        return 1
    points = args.points or (POINTS_QUICK if args.quick else POINTS_FULL)
    window_s = args.window or (WINDOW_QUICK_S if args.quick else WINDOW_FULL_S)
    mode = "custom" if (args.points or args.window) else ("quick" if args.quick else "full")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(points, Path(args.out), window_s=window_s, mode=mode, log=log)
    print(render_markdown(results))
    print(f"\nwrote {Path(args.out) / 'ray_throughput.json'} and {Path(args.out) / 'report.md'}")
    return 0 if all("ratio" in row for row in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
