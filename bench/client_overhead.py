"""Client overhead: this process's CPU time per LM call through the pipeline vs a bare dspy.Predict call.

    python -m bench.client_overhead --quick            # 8 seeds
    python -m bench.client_overhead --seeds 40 --out artifacts/bench

The offline LM is served by `python -m sage_dspy.offline.server` (a subprocess on 127.0.0.1, latency 0), so
the LM's own work happens in another process and this process's CPU time (time.process_time, all its
threads) is the client side only: DSPy adapters, the lm15 HTTP client, and the pipeline around them (search,
records, run folder). Every role is `openai/sage-offline` over HTTP on the native lm15 path (engine="auto",
cache off, seed=0, the role's temperature, as `build_lm` gives it).

- pipeline: `generate` on the bundled corpus for N seeds, corpus loaded and index built beforehand (a
  1-seed warm-up run), CPU of the generate call only, divided by the completions the server served for it
  (the records' lm_calls plus check_lms's one probe).
- baseline (1.0x): a bare `dspy.Predict` with a one-input signature, over the same server and LM settings,
  whose input text is padded so that its prompt has the pipeline's mean prompt size (chars, system + user),
  the same number of calls, CPU per call.

Target: pipeline CPU per LM call <= 2.0x the bare call's. Writes <out>/client_overhead.json and the
"client overhead" section of <out>/report.md.
"""

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dspy

from bench.report import markdown_table, write_report_section
from sage_dspy import lms as role_lms
from sage_dspy.corpus import load_corpus
from sage_dspy.offline.server import stop_process, wait_for_port
from sage_dspy.lms import DEFAULT_TEMPERATURES, ROLES
from sage_dspy.pipeline import GenerateConfig, generate

MODEL = "openai/sage-offline"
API_KEY = "sk-bench-not-a-secret"  # the server accepts any key and never keeps it
TARGET_RATIO = 2.0
SEEDS_QUICK, SEEDS_FULL = 8, 24
PROFILE_SEEDS = 2
PROFILE_TOP = 8
PROFILE_MODULES = ("sage_dspy", "bm25s", os.path.join("dspy", "adapters"))
READY_TIMEOUT_S = 30.0
SECTION = "client overhead"


# ---------------------------------------------------------------- the server (a subprocess, always stopped)

@contextlib.contextmanager
def loopback_server(folder: Path):
    """`python -m sage_dspy.offline.server --port 0 --latency 0` on 127.0.0.1; yields its base URL."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "server.out", folder / "server.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "sage_dspy.offline.server", "--port", "0", "--latency", "0",
             "--idle-exit", "120", "--max-seconds", "3600", "--max-requests", "1000000"],
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=folder)
    try:
        yield f"http://127.0.0.1:{wait_for_port(out, process, READY_TIMEOUT_S)}"
    finally:
        stop_process(process)


def server_stats(base: str) -> dict:
    with urllib.request.urlopen(base + "/stats", timeout=5) as reply:
        return json.loads(reply.read())


def _delta(after: dict, before: dict) -> dict:
    clients = {name: after["clients"].get(name, 0) - before["clients"].get(name, 0) for name in after["clients"]}
    return {"completions": after["completions"] - before["completions"], "served": after["served"] - before["served"],
            "prompt_tokens": after["prompt_tokens"] - before["prompt_tokens"],
            "completion_tokens": after["completion_tokens"] - before["completion_tokens"],
            "clients": {name: n for name, n in clients.items() if n}}


# ---------------------------------------------------------------- the LMs: one factory for both sides

def http_lm(api_base: str, role: str = "generator") -> dspy.LM:
    """build_lm's settings for a role (temperature, api_base, seed=0) with the response cache off, native lm15."""
    return dspy.LM(MODEL, api_base=api_base, api_key=API_KEY, cache=False, engine="auto",
                   temperature=DEFAULT_TEMPERATURES[role], seed=0)


@contextlib.contextmanager
def http_role_lms(api_base: str):
    """generate() builds its LMs with build_lm (response cache on); give every role http_lm instead."""
    original = role_lms.RoleLMs.__dict__["from_specs"]
    role_lms.RoleLMs.from_specs = classmethod(
        lambda cls, specs, **options: cls({role: http_lm(api_base, role) for role in specs}))
    try:
        yield
    finally:
        role_lms.RoleLMs.from_specs = original


def _config(seeds: int, out_dir: Path, index_root: Path) -> GenerateConfig:
    return GenerateConfig(corpus="bundled", seeds=seeds, lms={role: MODEL for role in ROLES}, out_dir=out_dir,
                          index_root=index_root)


# ---------------------------------------------------------------- the two measurements

def measure_pipeline(base: str, passages, seeds: int, work: Path, index_root: Path) -> dict:
    """CPU of one generate() call over `seeds` seeds (index cached, imports warm), per completion served."""
    with http_role_lms(base + "/v1"):
        generate(_config(1, work / "warmup", index_root), passages=passages, fresh=True)  # index, imports, pools
        before = server_stats(base)
        wall, cpu = time.perf_counter(), time.process_time()
        result = generate(_config(seeds, work / "pipeline", index_root), passages=passages, fresh=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    served = _delta(server_stats(base), before)
    records = result.records
    calls = served["served"]
    return {"seeds": seeds, "cpu_s": round(cpu, 4), "wall_s": round(wall, 3),
            "records_lm_calls": sum(r.get("lm_calls", 0) for r in records), "lm_calls": calls,
            "records_prompt_tokens": sum(r.get("prompt_tokens", 0) for r in records),
            "errors": sum(bool(r.get("error")) for r in records), "server": served,
            "mean_prompt_chars": round(served["prompt_tokens"] * 4 / max(calls, 1), 1),
            "mean_completion_chars": round(served["completion_tokens"] * 4 / max(calls, 1), 1),
            "cpu_ms_per_call": round(cpu * 1000 / max(calls, 1), 4)}


class BareSignature(dspy.Signature):
    """Answer the request."""

    text: str = dspy.InputField()
    answer: str = dspy.OutputField()


def _filler(chars: int, salt: int) -> str:
    words = ("search", "passage", "answer", "question", "river", "museum", "founded", "year", "city", "author")
    text, i = [], salt
    while sum(len(w) + 1 for w in text) < chars:
        text.append(words[i % len(words)])
        i += 7
    return " ".join(text)[:max(chars, 0)]


def _bare_calls(base: str, calls: int, mean_prompt_chars: float):
    """A ready-to-run loop of `calls` bare `dspy.Predict(BareSignature)` calls over the same server and LM
    settings, each input padded so the prompt (system + user) has `mean_prompt_chars` chars. Calibrated and
    warmed up here, so the returned function does only the calls."""
    lm = http_lm(base + "/v1")
    predict = dspy.Predict(BareSignature)
    with dspy.context(lm=lm):
        before = server_stats(base)
        predict(text="x")  # warm-up and calibration: the prompt around a 1-char input
        overhead_chars = _delta(server_stats(base), before)["prompt_tokens"] * 4 - 1
    pad = max(int(round(mean_prompt_chars - overhead_chars)), 1)
    inputs = [_filler(pad, i) for i in range(calls)]

    def run() -> int:
        with dspy.context(lm=lm):
            for text in inputs:
                predict(text=text)
        return pad

    return run


def measure_bare(base: str, calls: int, mean_prompt_chars: float) -> dict:
    """The baseline: `calls` bare dspy.Predict calls of the pipeline's mean prompt size, CPU per call."""
    run = _bare_calls(base, calls, mean_prompt_chars)
    before = server_stats(base)
    wall, cpu = time.perf_counter(), time.process_time()
    pad = run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    served = _delta(server_stats(base), before)
    n = max(served["served"], 1)
    return {"calls": calls, "cpu_s": round(cpu, 4), "wall_s": round(wall, 3), "server": served,
            "input_chars": pad, "mean_prompt_chars": round(served["prompt_tokens"] * 4 / n, 1),
            "mean_completion_chars": round(served["completion_tokens"] * 4 / n, 1),
            "cpu_ms_per_call": round(cpu * 1000 / max(calls, 1), 4)}


def profile_pipeline(base: str, passages, seeds: int, work: Path, index_root: Path) -> dict:
    """cProfile of a small generate() run and of as many bare calls: the pipeline's top cumulative functions
    (sage_dspy, bm25s, dspy adapters, lm15), and self time per area and per LM call on both sides, whose
    difference is where the pipeline's extra CPU goes."""
    profiler = cProfile.Profile()
    with http_role_lms(base + "/v1"):
        before = server_stats(base)
        profiler.enable()
        generate(_config(seeds, work / "profile", index_root), passages=passages, fresh=True)
        profiler.disable()
    served = _delta(server_stats(base), before)
    calls = max(served["served"], 1)
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = stats.total_tt
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        if not (any(module in filename for module in PROFILE_MODULES) or "lm15" in filename):
            continue
        if cumtime >= 0.95 * total:  # generate, run_seed, the loop's forward: they enclose everything
            continue
        rows.append({"function": f"{_short(filename)}:{line}({name})", "calls": ncalls,
                     "tottime_s": round(tottime, 4), "cumtime_s": round(cumtime, 4),
                     "cum_share": round(cumtime / total, 3) if total else None})
    rows.sort(key=lambda row: row["cumtime_s"], reverse=True)

    bare_profiler = cProfile.Profile()
    bare = _bare_calls(base, calls, served["prompt_tokens"] * 4 / calls)
    bare_profiler.enable()
    bare()
    bare_profiler.disable()
    bare_stats = pstats.Stats(bare_profiler, stream=io.StringIO())
    pipe_areas, bare_areas = _by_area(stats), _by_area(bare_stats)
    areas = []
    for area in set(pipe_areas) | set(bare_areas):
        p_ms, b_ms = pipe_areas.get(area, 0.0) * 1000 / calls, bare_areas.get(area, 0.0) * 1000 / calls
        areas.append({"area": area, "pipeline_ms_per_call": round(p_ms, 4), "bare_ms_per_call": round(b_ms, 4),
                      "extra_ms_per_call": round(p_ms - b_ms, 4)})
    areas.sort(key=lambda row: row["extra_ms_per_call"], reverse=True)
    return {"seeds": seeds, "lm_calls": calls, "profiled_total_s": round(total, 4),
            "bare_profiled_total_s": round(bare_stats.total_tt, 4), "top": rows[:PROFILE_TOP],
            "extra_by_area": areas[:PROFILE_TOP]}


def _short(filename: str) -> str:
    for marker in ("site-packages" + os.sep, "sage_dspy" + os.sep, "programs" + os.sep):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail if marker.startswith("site") else marker + tail
    return filename


def _area(filename: str) -> str:
    """A function's area: sage_dspy / programs, a package (dspy split one level down), a stdlib module, or
    built-ins (C functions: cProfile names them '~')."""
    if filename.startswith("~") or filename.startswith("<"):
        return "built-ins (C)"
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1:]
        if rest and rest[0] == "dspy" and len(rest) > 2:
            return "dspy/" + rest[1]
        return rest[0].removesuffix(".py") if rest else filename
    for local in ("sage_dspy", "programs", "bench"):
        if local in parts:
            return local
    if any(part.startswith("python3") for part in parts):
        rest = parts[[i for i, part in enumerate(parts) if part.startswith("python3")][-1] + 1:]
        return "stdlib " + (rest[0].removesuffix(".py") if rest else "?")
    return "other"


def _by_area(stats: pstats.Stats) -> dict:
    """Self time (tottime) summed per area: where the CPU is actually spent, without double counting."""
    totals: dict = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        area = _area(filename)
        totals[area] = totals.get(area, 0.0) + tottime
    return totals


# ---------------------------------------------------------------- one run

def run_benchmark(seeds: int, out: Path, *, mode: str = "custom", profile_seeds: int = PROFILE_SEEDS,
                  log=print) -> dict:
    out = Path(out)
    started = time.perf_counter()
    results = {"benchmark": "client_overhead", "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": {"cpu": _cpu(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                           else os.cpu_count(), "python": platform.python_version(), "dspy": dspy.__version__,
                           "loadavg_1m_at_start": _loadavg()},
               "settings": {"model": MODEL, "engine": "auto (native lm15)", "cache": False, "seed": 0,
                            "server_latency_s": 0.0, "corpus": "bundled", "seeds": seeds,
                            "profile_seeds": profile_seeds, "target_ratio": TARGET_RATIO}}
    work = Path(tempfile.mkdtemp(prefix="sage-bench-overhead-"))
    try:
        log("loading the bundled corpus ...")
        passages = load_corpus("bundled")
        index_root = work / "indexes"
        with loopback_server(work / "server") as base:
            log(f"server on {base}; pipeline, {seeds} seeds ...")
            results["pipeline"] = pipeline = measure_pipeline(base, passages, seeds, work, index_root)
            log(f"pipeline: {pipeline['lm_calls']} calls, {pipeline['cpu_ms_per_call']} ms CPU per call; "
                f"bare dspy.Predict, {pipeline['lm_calls']} calls ...")
            results["bare"] = measure_bare(base, pipeline["lm_calls"], pipeline["mean_prompt_chars"])
            if profile_seeds > 0:
                log(f"profiling the pipeline, {profile_seeds} seeds ...")
                results["profile"] = profile_pipeline(base, passages, profile_seeds, work, index_root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["ratio"] = _ratio(results["pipeline"]["cpu_ms_per_call"], results["bare"]["cpu_ms_per_call"])
    results["extra_cpu_ms_per_call"] = round(results["pipeline"]["cpu_ms_per_call"]
                                             - results["bare"]["cpu_ms_per_call"], 4)
    results["target"] = {"name": "pipeline_cpu_per_call_vs_bare", "limit": TARGET_RATIO, "value": results["ratio"],
                         "status": "SKIP" if results["ratio"] is None else
                         ("PASS" if results["ratio"] <= TARGET_RATIO else "FAIL")}
    results["native_path"] = set(results["pipeline"]["server"]["clients"]) == {"lm15/stdlib"}
    results["runtime_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_1m_at_end"] = _loadavg()
    out.mkdir(parents=True, exist_ok=True)
    (out / "client_overhead.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    write_report_section(SECTION, render_markdown(results), out / "report.md")
    return results


def _ratio(numerator, denominator) -> float | None:
    if not isinstance(numerator, (int, float)) or not isinstance(denominator, (int, float)) or denominator <= 0:
        return None
    return round(numerator / denominator, 3)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _loadavg() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


# ---------------------------------------------------------------- rendering

def render_markdown(results: dict) -> str:
    p, b, m, t = results["pipeline"], results["bare"], results["machine"], results["target"]
    lines = [f"## Client overhead (CPU per LM call, loopback server), {results['mode']} mode",
             f"Measured {results['started']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
             f"DSPy {m['dspy']}. Whole run: {results['runtime_s']} s; 1-minute load average "
             f"{m.get('loadavg_1m_at_start')} at start, {m.get('loadavg_1m_at_end')} at end.",
             "", markdown_table(
                 ["", "LM calls", "mean prompt chars", "mean reply chars", "CPU s", "CPU ms / call", "vs bare",
                  "wall s"],
                 [[f"pipeline `generate` ({p['seeds']} seeds)", p["lm_calls"], p["mean_prompt_chars"],
                   p["mean_completion_chars"], p["cpu_s"], p["cpu_ms_per_call"], f"{results['ratio']}x", p["wall_s"]],
                  ["bare `dspy.Predict` (baseline)", b["calls"], b["mean_prompt_chars"], b["mean_completion_chars"],
                   b["cpu_s"], b["cpu_ms_per_call"], "1.0x", b["wall_s"]]]),
             "", f"**Target** pipeline CPU per LM call ≤ {t['limit']}x a bare call: {results['ratio']}x, "
             f"**{t['status']}** (extra {results['extra_cpu_ms_per_call']} ms per call). Client path: "
             + ", ".join(f"{k} {v}" for k, v in p["server"]["clients"].items())
             + ("" if results["native_path"] else " (**not** the native lm15 path only)") + "."]
    profile = results.get("profile")
    if profile:
        lines += ["", f"### Where the pipeline's extra CPU goes (cProfile: {profile['seeds']} seeds, "
                  f"{profile['lm_calls']} LM calls, and as many bare calls)", "",
                  markdown_table(["area (self time)", "pipeline ms / call", "bare ms / call", "extra ms / call"],
                                 [[a["area"], a["pipeline_ms_per_call"], a["bare_ms_per_call"], a["extra_ms_per_call"]]
                                  for a in profile["extra_by_area"]]),
                  "", markdown_table(["top cumulative: sage_dspy, bm25s, dspy adapters, lm15", "calls", "self s",
                                      "cum s", "cum share"],
                                     [[f"`{r['function']}`", r["calls"], r["tottime_s"], r["cumtime_s"], r["cum_share"]]
                                      for r in profile["top"]])]
    lines += ["", "Notes: CPU is this process's `time.process_time()` (all threads) around the `generate` call "
              "only (corpus loaded, index built and imports warmed by a 1-seed run first) and around the bare "
              "calls; the server is another process, so the LM's own work is not counted. LM calls = completions "
              "the server served during the call (records' lm_calls plus the one check_lms probe). Prompt chars = "
              "the server's prompt tokens x 4 (the offline engine counts chars/4). The baseline's input is padded "
              "so its prompt has the pipeline's mean size; both sides use the same LM settings (openai/sage-offline, "
              "native lm15, cache off, seed=0) in the same run. Profiled times are inflated by cProfile (Python-heavy "
              "code most); cumulative times overlap (nested functions), and functions enclosing >= 95% of the run "
              "(generate, run_seed, the loop) are left out of the top list."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{SEEDS_QUICK} seeds")
    parser.add_argument("--seeds", type=int, help=f"seeds in the pipeline run (default {SEEDS_FULL}; "
                        "overrides --quick)")
    parser.add_argument("--profile-seeds", type=int, default=PROFILE_SEEDS, help="seeds in the cProfile run (0: skip)")
    parser.add_argument("--out", default="artifacts/bench", help="folder for client_overhead.json and report.md")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    seeds = args.seeds or (SEEDS_QUICK if args.quick else SEEDS_FULL)
    mode = "custom" if args.seeds else ("quick" if args.quick else "full")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(seeds, Path(args.out), mode=mode, profile_seeds=args.profile_seeds, log=log)
    print(render_markdown(results))
    print(f"\nwrote {Path(args.out) / 'client_overhead.json'} and {Path(args.out) / 'report.md'}")
    return 0 if results["pipeline"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
