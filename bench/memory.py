"""Memory over a long generate run: does RSS stay flat as seeds go by?

    python -m bench.memory --quick                 # 300 seeds on each path: about 1 min on 2 cores
    python -m bench.memory                         # 2,000 seeds on each path
    python -m bench.memory --bounds off            # DSPy's own caps: the baseline before sage_dspy.lm.bounds
    python -m bench.memory --paths offline --seeds 500 --out artifacts/bench

Each path runs `generate` in a child process of its own (so its memory is its own), over a corpus of clones
of the bundled one (140 passages x as many copies as the seeds need, distinct ids), with `--no-track`'s
settings: the offline LM in-process (`offline`), and every role as `openai/sage-offline` through
`python -m sage_dspy.offline.server` on 127.0.0.1 (`http`: the real-LM path, dspy.LM with the response cache on
in a fresh DSPY_CACHEDIR, native lm15). Every `--every` seeds (from generate's `on_record`) the child runs
gc.collect() and samples VmRSS and VmHWM (/proc/self/status), Python's allocated blocks, and what DSPy keeps:
the global history, the LMs' and modules' histories, the trace, the response cache's memory tier.

The growth is the least-squares slope of RSS over seeds after a warm-up of the first 10% of seeds, at least
100 (the index, imports and DSPy's caps filling: sage_dspy.lm.bounds' fill within about 100 seeds), in MB per
1,000 seeds, and on the last quarter alone.
Targets: that slope <= 10 MB per 1,000 seeds on each path, and DSPy's structures within sage_dspy.lm.bounds'
caps at the end. Why 10: one seed's record is about 36 KB of JSON (50 KB as Python objects) and one history
entry about 7 KB for each of about 40 calls a seed, so keeping anything per seed or per call shows as 50 MB
or more per 1,000 seeds, while a run that keeps nothing per seed measured under 5 (allocator noise).
Writes <out>/memory.json and the "memory" section of <out>/report.md.
"""

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dspy

from bench.report import machine, markdown_table, save_results
from sage_dspy.lm.bounds import SAGE_BOUNDS

SECTION = "memory"
PATHS = ("offline", "http")
SEEDS_QUICK = {"offline": 300, "http": 300}
SEEDS_FULL = {"offline": 2000, "http": 2000}
SAMPLES = 20  # samples per path (the sampling interval is seeds / SAMPLES unless --every is given)
WARMUP_SHARE, WARMUP_MIN = 0.10, 100  # sage_dspy.lm.bounds' caps fill within about 100 seeds
TARGET_MB_PER_1000 = 10.0
MODEL = "openai/sage-offline"
API_KEY = "sk-bench-not-a-secret"  # the loopback server accepts any key and never keeps it
CHILD_TIMEOUT_S = 3600
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the child: one generate run, sampled

def bench_passages(seeds: int):
    """The bundled corpus cloned until it has at least `seeds` passages (draw_seeds draws without
    replacement): same titles and texts, ids suffixed with the copy number. The same on every machine."""
    from sage_dspy.search.corpus import load_corpus
    from sage_dspy.search.passages import Passage

    base = load_corpus("bundled")
    copies = max(1, math.ceil(seeds / len(base)))
    return [Passage(f"{p.id}-c{copy:03d}", p.title, p.text) for copy in range(copies) for p in base]


def _proc_status_mb() -> dict:
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                found[key] = round(int(line.split()[1]) / 1024, 1)
    return {"rss_mb": found.get("VmRSS"), "hwm_mb": found.get("VmHWM"), "anon_mb": found.get("RssAnon"),
            "file_mb": found.get("RssFile")}


def dspy_state() -> dict:
    """What DSPy keeps: history entries alive (global list, every LM and module history, counted once), the
    longest single history, the trace, the response cache's memory tier."""
    from dspy.clients import base_lm

    owners = [o for o in gc.get_objects()
              if isinstance(o, (dspy.Module, dspy.BaseLM)) and isinstance(getattr(o, "history", None), list)]
    entries = {id(entry) for entry in base_lm.GLOBAL_HISTORY}
    for owner in owners:
        entries.update(id(entry) for entry in owner.history)
    trace = dspy.settings.trace
    cache = vars(dspy).get("cache")
    memory = getattr(cache, "memory_cache", None) if getattr(cache, "enable_memory_cache", False) else None
    return {"global_history": len(base_lm.GLOBAL_HISTORY), "history_owners": len(owners),
            "history_max": max((len(o.history) for o in owners), default=0), "history_entries": len(entries),
            "trace": len(trace) if isinstance(trace, list) else 0,
            "cache_memory_entries": len(memory) if memory is not None else 0}


def sample(seeds: int, started: float, record_bytes: int) -> dict:
    gc.collect()
    return {"seeds": seeds, "elapsed_s": round(time.perf_counter() - started, 2), **_proc_status_mb(),
            "allocated_blocks": sys.getallocatedblocks(), "gc_objects": len(gc.get_objects()),
            "record_json_mb": round(record_bytes / 1e6, 2), **dspy_state()}


def set_bounds(choice: str) -> dict:
    """package: as importing sage_dspy and running generate leave them; on: sage_dspy.lm.bounds' caps; off:
    DSPy's own."""
    from sage_dspy.lm import bounds

    if choice == "on":
        bounds.apply_memory_bounds()
    elif choice == "off":
        bounds.apply_memory_bounds(bounds.DSPY_DEFAULTS, force=True)
    return vars(bounds.current_bounds())


@contextlib.contextmanager
def loopback_server(folder: Path):
    """`python -m sage_dspy.offline.server` on 127.0.0.1, latency 0, no faults; yields its base URL."""
    from sage_dspy.offline.process import stop_process, wait_for_port

    out, err = folder / "server.out", folder / "server.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "sage_dspy.offline.server", "--port", "0", "--latency", "0",
             "--idle-exit", "120", "--max-seconds", str(CHILD_TIMEOUT_S), "--max-requests", "10000000"],
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=folder)
    try:
        yield f"http://127.0.0.1:{wait_for_port(out, process, 30.0)}"
    finally:
        stop_process(process)


def run_child(path: str, seeds: int, every: int, bounds_choice: str, work: Path) -> dict:
    """One generate run over `seeds` seeds on `path`, sampled every `every` seeds; returns the samples."""
    from sage_dspy.lm.bounds import current_bounds
    from sage_dspy.lm.roles import ROLES
    from sage_dspy.runs.config import GenerateConfig
    from sage_dspy.runs.generate import generate

    started = time.perf_counter()
    caps = set_bounds(bounds_choice)
    passages = bench_passages(seeds)
    state = {"count": 0, "bytes": 0}
    samples = [sample(0, started, 0)]

    def on_record(record: dict) -> None:
        state["count"] += 1
        state["bytes"] += len(json.dumps(record, ensure_ascii=False))
        if state["count"] % every == 0 or state["count"] == seeds:
            samples.append(sample(state["count"], started, state["bytes"]))

    settings = {"corpus": "bundled-clones", "seeds": seeds, "out_dir": work / "run", "index_root": work / "indexes"}
    with contextlib.ExitStack() as stack:
        if path == "http":
            base = stack.enter_context(loopback_server(work))
            settings.update(lms={role: MODEL for role in ROLES}, lm_options={"api_base": base + "/v1"})
        result = generate(GenerateConfig(**settings), passages=passages, fresh=True, on_record=on_record)
        after = sample(-1, started, state["bytes"])  # generate returned, its result still held
    return {"path": path, "seeds": seeds, "every": every, "bounds": bounds_choice, "caps": caps,
            "passages": len(passages), "errors": sum(bool(r.get("error")) for r in result.records),
            "lm_calls": sum(r.get("lm_calls", 0) for r in result.records),
            "caps_end": vars(current_bounds()), "wall_s": round(time.perf_counter() - started, 1),
            "samples": samples, "after_generate": after}


# ---------------------------------------------------------------- the parent: one child per path

def spawn(path: str, seeds: int, every: int, bounds_choice: str, log=print) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"sage-bench-memory-{path}-"))
    result_file = work / "result.json"
    env = {**os.environ, "DSPY_CACHEDIR": str(work / "dspy_cache"), "OPENAI_API_KEY": API_KEY,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for name in ("OPENAI_API_BASE", "OPENAI_BASE_URL"):  # either would send dspy.LM through LiteLLM
        env.pop(name, None)
    command = [sys.executable, "-m", "bench.memory", "--child", path, "--seeds", str(seeds), "--every", str(every),
               "--bounds", bounds_choice, "--work", str(work), "--result", str(result_file)]
    try:
        log(f"{path}: {seeds} seeds, a sample every {every} ...")
        finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT_S)
        if finished.returncode != 0 or not result_file.exists():
            tail = (finished.stderr or finished.stdout)[-2000:]
            raise RuntimeError(f"the {path} child exited {finished.returncode}:\n{tail}")
        return json.loads(result_file.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def slope_per_1000(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over seeds, per 1,000 seeds; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_x, mean_y = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return 1000 * sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def growth(run: dict) -> dict:
    """RSS at the start, after warm-up and at the end; the slope after warm-up and over the last quarter."""
    samples, seeds = run["samples"], run["seeds"]
    warm = next(s for s in samples if s["seeds"] >= min(max(WARMUP_MIN, WARMUP_SHARE * seeds), seeds / 2))
    after_warm = [s for s in samples if s["seeds"] >= warm["seeds"]]
    last_quarter = [s for s in samples if s["seeds"] >= 0.75 * seeds]
    end = samples[-1]
    blocks = slope_per_1000([(s["seeds"], s["allocated_blocks"]) for s in after_warm])

    def rounded(value, digits=1):
        return None if value is None else round(value, digits)

    return {"rss_start_mb": samples[0]["rss_mb"], "warmup_seeds": warm["seeds"], "rss_warm_mb": warm["rss_mb"],
            "rss_end_mb": end["rss_mb"], "hwm_end_mb": end["hwm_mb"],
            "rss_after_generate_mb": run["after_generate"]["rss_mb"],
            "growth_after_warmup_mb": round(end["rss_mb"] - warm["rss_mb"], 1),
            "end_vs_warm": round(end["rss_mb"] / warm["rss_mb"], 3),
            "slope_mb_per_1000": rounded(slope_per_1000([(s["seeds"], s["rss_mb"]) for s in after_warm])),
            "slope_last_quarter_mb_per_1000": rounded(
                slope_per_1000([(s["seeds"], s["rss_mb"]) for s in last_quarter])),
            "anon_slope_mb_per_1000": rounded(slope_per_1000([(s["seeds"], s["anon_mb"]) for s in after_warm])),
            "file_slope_mb_per_1000": rounded(slope_per_1000([(s["seeds"], s["file_mb"]) for s in after_warm])),
            "blocks_per_seed": rounded(blocks / 1000 if blocks is not None else None),
            "record_json_kb_per_seed": round(end["record_json_mb"] * 1000 / max(seeds, 1), 1),
            "seconds_per_seed": round((end["elapsed_s"] - samples[0]["elapsed_s"]) / max(seeds, 1), 3)}


def targets(runs: dict) -> list[dict]:
    rows = []
    for path, run in runs.items():
        slope = run["growth"]["slope_mb_per_1000"]
        rows.append({"name": f"rss_slope_{path}", "rule": f"RSS slope after warm-up <= {TARGET_MB_PER_1000:g} MB "
                     "per 1,000 seeds", "limit": TARGET_MB_PER_1000, "value": slope,
                     "status": "SKIP" if slope is None else ("PASS" if slope <= TARGET_MB_PER_1000 else "FAIL")})
        end, caps = run["samples"][-1], run["caps_end"]
        value = {"global_history": end["global_history"], "history_max": end["history_max"], "trace": end["trace"],
                 "cache_memory_entries": end["cache_memory_entries"]}
        limit = {"global_history": SAGE_BOUNDS.global_history, "history_max": SAGE_BOUNDS.history,
                 "trace": SAGE_BOUNDS.trace, "cache_memory_entries": SAGE_BOUNDS.cache_entries}
        if caps["disk_cache_pages"] is not None:  # the disk cache was built (the http path)
            value.update(disk_cache_pages=caps["disk_cache_pages"], disk_mmap_bytes=caps["disk_mmap_bytes"])
            limit.update(disk_cache_pages=SAGE_BOUNDS.disk_cache_pages, disk_mmap_bytes=SAGE_BOUNDS.disk_mmap_bytes)
        rows.append({"name": f"dspy_caps_{path}", "rule": "DSPy's histories, trace and response cache (memory "
                     "tier, SQLite page cache and memory map) within sage_dspy.lm.bounds' caps at the end",
                     "limit": limit, "value": value,
                     "status": "PASS" if all(value[key] <= limit[key] for key in value) else "FAIL"})
    return rows


def run_benchmark(seeds: dict[str, int], out: Path, *, mode: str = "custom", bounds_choice: str = "package",
                  every: int | None = None, log=print) -> dict:
    started = time.perf_counter()
    results = {"benchmark": "memory", "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(),
               "settings": {"seeds": seeds, "bounds": bounds_choice, "warmup_share": WARMUP_SHARE,
                            "warmup_min": WARMUP_MIN, "target_mb_per_1000": TARGET_MB_PER_1000,
                            "targets": "2-5", "recipe": "sage", "http_model": MODEL,
                            "http_cache": "on (fresh DSPY_CACHEDIR)"},
               "runs": {}}
    for path, count in seeds.items():
        run = spawn(path, count, every or max(1, count // SAMPLES), bounds_choice, log=log)
        run["growth"] = growth(run)
        results["runs"][path] = run
        g = run["growth"]
        log(f"{path}: RSS {g['rss_warm_mb']} MB after {g['warmup_seeds']} seeds -> {g['rss_end_mb']} MB after "
            f"{count} ({g['end_vs_warm']}x); slope {g['slope_mb_per_1000']} MB per 1,000 seeds")
    results["targets"] = targets(results["runs"])
    save_results(results, "memory.json", SECTION, render_markdown, out, started)
    return results




# ---------------------------------------------------------------- rendering

def _curve_rows(run: dict, points: int = 11) -> list[list]:
    samples = run["samples"]
    step = max(1, (len(samples) - 1) // (points - 1))
    chosen = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    return [[s["seeds"], s["rss_mb"], s["anon_mb"], s["file_mb"], s["allocated_blocks"], s["history_entries"],
             s["trace"], s["cache_memory_entries"], s["record_json_mb"], s["elapsed_s"]] for s in chosen]


def render_markdown(results: dict) -> str:
    m, runs = results["machine"], results["runs"]
    lines = [f"## Memory over a long `generate` run ({results['mode']} mode, bounds: {results['settings']['bounds']})",
             f"Measured {results['started']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, DSPy "
             f"{m['dspy']}. Whole run: {results['runtime_s']} s; 1-minute load average "
             f"{m.get('loadavg_1m_at_start')} at start, {m.get('loadavg_1m_at_end')} at end.", "",
             markdown_table(
                 ["path", "seeds", "s / seed", "RSS start MB", "RSS after warm-up MB", "RSS end MB", "end / warm-up",
                  "slope MB / 1,000 seeds", "last quarter", "anon / file slope", "blocks / seed",
                  "record KB / seed", "errors"],
                 [[path, r["seeds"], r["growth"]["seconds_per_seed"], r["growth"]["rss_start_mb"],
                   f"{r['growth']['rss_warm_mb']} ({r['growth']['warmup_seeds']} seeds)", r["growth"]["rss_end_mb"],
                   f"{r['growth']['end_vs_warm']}x", r["growth"]["slope_mb_per_1000"],
                   r["growth"]["slope_last_quarter_mb_per_1000"],
                   f"{r['growth']['anon_slope_mb_per_1000']} / {r['growth']['file_slope_mb_per_1000']}",
                   r["growth"]["blocks_per_seed"],
                   r["growth"]["record_json_kb_per_seed"], r["errors"]] for path, r in runs.items()])]
    for path, run in runs.items():
        caps = run["caps_end"]
        lines += ["", f"### {path}: the curve (caps: history {caps['history']}, global history "
                  f"{caps['global_history']}, trace {caps['trace']}, memory cache {caps['cache_entries']}"
                  + (f", SQLite pages {caps['disk_cache_pages']}, mmap {caps['disk_mmap_bytes']} B"
                     if caps["disk_cache_pages"] is not None else "") + ")", "",
                  markdown_table(["seeds", "RSS MB", "anon MB", "file MB", "allocated blocks",
                                  "history entries alive", "trace", "cache entries (memory)",
                                  "records JSON MB (cumulative)", "elapsed s"],
                                 _curve_rows(run))]
    lines += ["", "### Targets", "", markdown_table(
        ["target", "rule", "value", "status"],
        [[t["name"], t["rule"], t["value"], f"**{t['status']}**"] for t in results["targets"]])]
    lines += ["", "Notes: each path is one `generate` call in its own child process (`--no-track` settings, "
              "recipe sage, targets 2-5), over clones of the bundled corpus. Samples follow gc.collect(); RSS is "
              "VmRSS = RssAnon (the process's own memory) + RssFile (mapped files: SQLite's memory map of the "
              "disk cache shows here). Slope = least-squares RSS over seeds from the warm-up point (the first 10% "
              "of seeds, at least 100) to the end. `blocks / seed`: growth of Python's allocated blocks "
              "(objects). `history entries alive` counts each DSPy history entry once however many histories "
              "hold it; `records JSON` is the size of the records generate has seen (as JSON), which it keeps in "
              "memory until the end unless it keeps only their summaries. `http`: every role "
              "`openai/sage-offline` over the loopback server, dspy.LM's response cache on (fresh disk folder), "
              "native lm15."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{SEEDS_QUICK['offline']} offline seeds and {SEEDS_QUICK['http']} over HTTP")
    parser.add_argument("--seeds", type=int, help="seeds on every path (overrides --quick; default "
                        f"{SEEDS_FULL['offline']})")
    parser.add_argument("--paths", default=",".join(PATHS), help="offline, http or both (comma-separated)")
    parser.add_argument("--every", type=int, help=f"seeds between samples (default: seeds / {SAMPLES})")
    parser.add_argument("--bounds", choices=("package", "on", "off"), default="package",
                        help="DSPy's caps: as the package sets them (default), sage_dspy.lm.bounds' (on), DSPy's (off)")
    parser.add_argument("--out", default="artifacts/bench", help="folder for memory.json and report.md")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 10:
        parser.error("--seeds must be at least 10")
    if args.child:
        result = run_child(args.child, args.seeds, args.every, args.bounds, Path(args.work))
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
        return 0
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or set(paths) - set(PATHS):
        parser.error(f"--paths takes {', '.join(PATHS)}")
    defaults = SEEDS_QUICK if args.quick else SEEDS_FULL
    seeds = {path: args.seeds or defaults[path] for path in paths}
    mode = "custom" if args.seeds else ("quick" if args.quick else "full")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(seeds, Path(args.out), mode=mode, bounds_choice=args.bounds, every=args.every, log=log)
    print(render_markdown(results))
    print(f"\nwrote {Path(args.out) / 'memory.json'} and {Path(args.out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
