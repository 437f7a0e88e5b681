"""Client overhead: this process's CPU time per LM call through the pipeline vs a bare dspy.Predict call.

    python -m bench.client_overhead --quick            # 8 seeds, 3 rounds
    python -m bench.client_overhead --seeds 40 --rounds 5 --out artifacts/bench

The offline LM is served by `python -m sage_dspy.offline.server` (a subprocess on 127.0.0.1, latency 0), so
the LM's own work happens in another process and this process's CPU time (time.process_time, all its
threads) is the client side only: DSPy adapters, the lm15 HTTP client, and the pipeline around them (search,
records, run folder). Every role is `openai/sage-offline` (or `--model`) over HTTP on the native lm15 path
(engine="auto", cache off, seed=0, the role's temperature): the pipeline's roles get the LM `build_lm` builds
(its class and settings) with only the cache turned off and a key added; the baseline gets a plain `dspy.LM`
of the same settings.

- pipeline: `generate` on the bundled corpus for N seeds, corpus loaded and index built beforehand (a
  1-seed warm-up run), CPU of the generate call only, divided by the completions the server served for it
  (the records' lm_calls plus check_lms's one probe and the judge's calibration items).
- baseline (1.0x): a bare `dspy.Predict` with a one-input signature, over the same server and LM settings,
  whose input text is padded so that its prompt has the pipeline's mean prompt size (chars, system + user),
  the same number of calls, CPU per call. It runs DSPy's own ChatAdapter, as a plain DSPy program does.
- rounds: the two run in turn, `--rounds` times (the pipeline, then the baseline, again and again), so that
  a machine load that changes during the run weighs on both sides; the ratio is of the CPU summed over all
  rounds, and the JSON keeps each round's ratio and load average.

Target: pipeline CPU per LM call <= 2.0x the bare call's. Writes <out>/client_overhead.json and the
"client overhead" section of <out>/report.md.

The model name moves the ratio: DSPy prices every call, and for a name its model table does not know (like
`openai/sage-offline`, or a self-hosted model) it scans the whole table twice per call, about 1.4 ms on
both sides. A known name (`--model openai/gpt-4o-mini`; the server answers any name) leaves the bare call
about 1 ms and the ratio higher.

The profile (cProfile of a small run and of as many bare calls) times CPU (time.thread_time) in the calling
thread and in every thread started during the run: `generate` runs its seeds on worker threads, so a
profile of the calling thread alone sees only the wait for them.
"""

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import dspy

from bench.report import loadavg, machine, markdown_table, save_results
from sage_dspy.lm import roles as role_lms
from sage_dspy.search.corpus import load_corpus
from sage_dspy.offline.process import stop_process, wait_for_port
from sage_dspy.lm.roles import DEFAULT_TEMPERATURES, ROLES
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.generate import generate

MODEL = "openai/sage-offline"
API_KEY = "sk-bench-not-a-secret"  # the server accepts any key and never keeps it
TARGET_RATIO = 2.0
SEEDS_QUICK, SEEDS_FULL = 8, 24
ROUNDS = 3
PROFILE_SEEDS = 2
PROFILE_TOP = 10
ENCLOSING_SHARE = 0.5  # the top list leaves out functions whose cumulative time is at least this share of the run
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

def http_lm(api_base: str, role: str = "generator", model: str = MODEL) -> dspy.LM:
    """The baseline's LM: a plain dspy.LM with build_lm's settings for a role (temperature, api_base, seed=0),
    the response cache off, native lm15."""
    return dspy.LM(model, api_base=api_base, api_key=API_KEY, cache=False, engine="auto",
                   temperature=DEFAULT_TEMPERATURES[role], seed=0)


def pipeline_lm(api_base: str, role: str, model: str = MODEL) -> dspy.LM:
    """A role's LM as generate() gets it (build_lm: the pipeline's LM class and settings), with the response
    cache off and the key passed as http_lm passes it."""
    lm = role_lms.build_lm(model, role, api_base=api_base, seed=0)
    lm.cache = False
    lm.kwargs["api_key"] = API_KEY
    return lm


@contextlib.contextmanager
def http_role_lms(api_base: str):
    """generate() builds its LMs with build_lm (response cache on); give every role pipeline_lm instead (of the
    model the config names)."""
    original = role_lms.RoleLMs.__dict__["from_specs"]
    role_lms.RoleLMs.from_specs = classmethod(lambda cls, specs, *args, **options: cls(
        {role: pipeline_lm(api_base, role, model) for role, model in specs.items()}))
    try:
        yield
    finally:
        role_lms.RoleLMs.from_specs = original


def _config(seeds: int, out_dir: Path, index_root: Path, model: str = MODEL) -> GenerateConfig:
    return GenerateConfig(corpus="bundled", seeds=seeds, lms={role: model for role in ROLES}, out_dir=out_dir,
                          index_root=index_root)


# ---------------------------------------------------------------- the two measurements

def warm_up(base: str, passages, work: Path, index_root: Path, model: str = MODEL) -> None:
    """A 1-seed generate(): builds the index and warms imports and pools before anything is timed."""
    with http_role_lms(base + "/v1"):
        generate(_config(1, work / "warmup", index_root, model), passages=passages, fresh=True)


def measure_pipeline(base: str, passages, seeds: int, out_dir: Path, index_root: Path, model: str = MODEL) -> dict:
    """CPU of one generate() call over `seeds` seeds (after warm_up), per completion served."""
    with http_role_lms(base + "/v1"):
        before = server_stats(base)
        wall, cpu = time.perf_counter(), time.process_time()
        result = generate(_config(seeds, out_dir, index_root, model), passages=passages, fresh=True)
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


def _bare_calls(base: str, calls: int, mean_prompt_chars: float, model: str = MODEL):
    """A ready-to-run loop of `calls` bare `dspy.Predict(BareSignature)` calls over the same server and LM
    settings, each input padded so the prompt (system + user) has `mean_prompt_chars` chars. Calibrated and
    warmed up here, so the returned function does only the calls."""
    lm = http_lm(base + "/v1", model=model)
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


def measure_bare(base: str, run, calls: int) -> dict:
    """The baseline: `run` (from _bare_calls) does `calls` bare dspy.Predict calls of the pipeline's mean prompt
    size; CPU per call."""
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


def combine(rounds: list[dict], calls_key: str) -> dict:
    """One side's rounds as one measurement: times, calls and server counts summed, per-call figures of the sums."""
    total = dict(rounds[0])
    for key in ("cpu_s", "wall_s", calls_key, "records_lm_calls", "records_prompt_tokens", "errors"):
        if key in total:
            total[key] = round(sum(side[key] for side in rounds), 4)
    server = {key: sum(side["server"][key] for side in rounds)
              for key in ("completions", "served", "prompt_tokens", "completion_tokens")}
    server["clients"] = {}
    for side in rounds:
        for name, count in side["server"]["clients"].items():
            server["clients"][name] = server["clients"].get(name, 0) + count
    served = max(server["served"], 1)
    total.update(server=server, mean_prompt_chars=round(server["prompt_tokens"] * 4 / served, 1),
                 mean_completion_chars=round(server["completion_tokens"] * 4 / served, 1),
                 cpu_ms_per_call=round(total["cpu_s"] * 1000 / max(total[calls_key], 1), 4))
    return total


def measure_rounds(base: str, passages, seeds: int, rounds: int, work: Path, index_root: Path, log,
                   model: str = MODEL) -> dict:
    """`rounds` x (the pipeline, then as many bare calls of its mean prompt size), interleaved so that a change
    in machine load between the two sides evens out; the bare inputs are calibrated on the first round."""
    warm_up(base, passages, work, index_root, model)
    pipelines, bares, per_round, run_bare, bare_calls = [], [], [], None, 0
    for index in range(rounds):
        pipeline = measure_pipeline(base, passages, seeds, work / f"pipeline-{index}", index_root, model)
        if run_bare is None:  # every round sends the same prompts (same seeds, deterministic server)
            bare_calls = pipeline["lm_calls"]
            run_bare = _bare_calls(base, bare_calls, pipeline["mean_prompt_chars"], model)
        bare = measure_bare(base, run_bare, bare_calls)
        pipelines.append(pipeline)
        bares.append(bare)
        per_round.append({"pipeline_cpu_ms_per_call": pipeline["cpu_ms_per_call"],
                          "bare_cpu_ms_per_call": bare["cpu_ms_per_call"],
                          "ratio": _ratio(pipeline["cpu_ms_per_call"], bare["cpu_ms_per_call"]),
                          "loadavg_1m": loadavg()})
        log(f"round {index + 1}/{rounds}: pipeline {pipeline['lm_calls']} calls, {pipeline['cpu_ms_per_call']} ms "
            f"CPU per call; bare {bare['cpu_ms_per_call']} ms; {per_round[-1]['ratio']}x")
    return {"pipeline": combine(pipelines, "lm_calls"), "bare": combine(bares, "calls"), "rounds": per_round}


@contextlib.contextmanager
def cpu_profile():
    """cProfile in CPU time (time.thread_time) of this thread and of every thread started inside the block
    (generate's worker threads); yields a list that holds the pstats.Stats of them all after the block.
    From Python 3.12 cProfile hooks into sys.monitoring, which sees every thread but allows one profiler at a
    time: there the calling thread's profiler is the only one."""
    profilers = []

    def start_in_new_thread(*_):  # threading.setprofile: the first event of each new thread lands here
        profiler = cProfile.Profile(time.thread_time)
        profilers.append(profiler)
        profiler.enable()  # replaces this hook in that thread

    result = []
    main = cProfile.Profile(time.thread_time)
    per_thread = sys.version_info < (3, 12)
    if per_thread:
        threading.setprofile(start_in_new_thread)
    main.enable()
    try:
        yield result
    finally:
        main.disable()
        if per_thread:
            threading.setprofile(None)
        result.append(pstats.Stats(main, *profilers, stream=io.StringIO()))


def profile_pipeline(base: str, passages, seeds: int, work: Path, index_root: Path, model: str = MODEL) -> dict:
    """cProfile (CPU time, all threads) of a small generate() run and of as many bare calls: the pipeline's top
    cumulative functions (sage_dspy, bm25s, dspy adapters, lm15), and self time per area and per LM call on
    both sides, whose difference is where the pipeline's extra CPU goes."""
    with http_role_lms(base + "/v1"):
        before = server_stats(base)
        with cpu_profile() as profiled:
            generate(_config(seeds, work / "profile", index_root, model), passages=passages, fresh=True)
    served = _delta(server_stats(base), before)
    calls = max(served["served"], 1)
    [stats] = profiled
    total = stats.total_tt
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        if not (any(module in filename for module in PROFILE_MODULES) or "lm15" in filename):
            continue
        if cumtime >= ENCLOSING_SHARE * total:  # run_seed, the loop, the adapter call: they enclose the LM call
            continue
        rows.append({"function": f"{_short(filename)}:{line}({name})", "calls": ncalls,
                     "tottime_s": round(tottime, 4), "cumtime_s": round(cumtime, 4),
                     "cum_share": round(cumtime / total, 3) if total else None})
    rows.sort(key=lambda row: row["cumtime_s"], reverse=True)

    bare = _bare_calls(base, calls, served["prompt_tokens"] * 4 / calls, model)
    with cpu_profile() as profiled:
        bare()
    [bare_stats] = profiled
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
                  rounds: int = 1, model: str = MODEL, log=print) -> dict:
    out = Path(out)
    started = time.perf_counter()
    results = {"benchmark": "client_overhead", "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(),
               "settings": {"model": model, "engine": "auto (native lm15)", "cache": False, "seed": 0,
                            "server_latency_s": 0.0, "corpus": "bundled", "seeds": seeds, "rounds": rounds,
                            "profile_seeds": profile_seeds, "target_ratio": TARGET_RATIO}}
    work = Path(tempfile.mkdtemp(prefix="sage-bench-overhead-"))
    try:
        log("loading the bundled corpus ...")
        passages = load_corpus("bundled")
        index_root = work / "indexes"
        with loopback_server(work / "server") as base:
            log(f"server on {base}; {rounds} round(s) of the pipeline ({seeds} seeds) and as many bare calls ...")
            results.update(measure_rounds(base, passages, seeds, rounds, work, index_root, log, model))
            if profile_seeds > 0:
                log(f"profiling the pipeline, {profile_seeds} seeds ...")
                results["profile"] = profile_pipeline(base, passages, profile_seeds, work, index_root, model)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["ratio"] = _ratio(results["pipeline"]["cpu_ms_per_call"], results["bare"]["cpu_ms_per_call"])
    results["extra_cpu_ms_per_call"] = round(results["pipeline"]["cpu_ms_per_call"]
                                             - results["bare"]["cpu_ms_per_call"], 4)
    results["target"] = {"name": "pipeline_cpu_per_call_vs_bare", "limit": TARGET_RATIO, "value": results["ratio"],
                         "status": "SKIP" if results["ratio"] is None else
                         ("PASS" if results["ratio"] <= TARGET_RATIO else "FAIL")}
    results["native_path"] = set(results["pipeline"]["server"]["clients"]) == {"lm15/stdlib"}
    save_results(results, "client_overhead.json", SECTION, render_markdown, out, started)
    return results


def _ratio(numerator, denominator) -> float | None:
    if not isinstance(numerator, (int, float)) or not isinstance(denominator, (int, float)) or denominator <= 0:
        return None
    return round(numerator / denominator, 3)




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
                 [[f"pipeline `generate` ({p['seeds']} seeds{_times(results)})", p["lm_calls"], p["mean_prompt_chars"],
                   p["mean_completion_chars"], p["cpu_s"], p["cpu_ms_per_call"], f"{results['ratio']}x", p["wall_s"]],
                  ["bare `dspy.Predict` (baseline)", b["calls"], b["mean_prompt_chars"], b["mean_completion_chars"],
                   b["cpu_s"], b["cpu_ms_per_call"], "1.0x", b["wall_s"]]]),
             "", f"**Target** pipeline CPU per LM call ≤ {t['limit']}x a bare call: {results['ratio']}x, "
             f"**{t['status']}** (extra {results['extra_cpu_ms_per_call']} ms per call). Client path: "
             + ", ".join(f"{k} {v}" for k, v in p["server"]["clients"].items())
             + ("" if results["native_path"] else " (**not** the native lm15 path only)") + "."]
    if len(results.get("rounds", [])) > 1:
        lines += ["", "Rounds (each: the pipeline, then as many bare calls; the ratio above is of the sums): "
                  + ", ".join(f"{r['ratio']}x (load {r['loadavg_1m']})" for r in results["rounds"]) + "."]
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
              "the server served during the call (records' lm_calls plus the one check_lms probe and the judge's "
              "calibration items). Prompt chars = "
              "the server's prompt tokens x 4 (the offline engine counts chars/4). The baseline's input is padded "
              "so its prompt has the pipeline's mean size; both sides use the same LM settings "
              f"({results['settings']['model']}, native lm15, cache off, seed=0) in the same run; the pipeline's "
              "LMs are build_lm's. Profiles time CPU (time.thread_time) in every thread, so waits count nothing; "
              "profiled times are inflated by "
              "cProfile (Python-heavy code most); cumulative times overlap (nested functions), and functions enclosing "
              ">= half of the run (run_seed, the loop, the adapter call) are left out of the top list."]
    return "\n".join(lines)


def _times(results: dict) -> str:
    rounds = len(results.get("rounds", []))
    return f" x {rounds} rounds" if rounds > 1 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.client_overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{SEEDS_QUICK} seeds")
    parser.add_argument("--seeds", type=int, help=f"seeds in the pipeline run (default {SEEDS_FULL}; "
                        "overrides --quick)")
    parser.add_argument("--profile-seeds", type=int, default=PROFILE_SEEDS, help="seeds in the cProfile run (0: skip)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="pipeline-then-bare rounds, interleaved "
                        f"(default {ROUNDS}); more rounds even out a changing machine load")
    parser.add_argument("--model", default=MODEL, help=f"the model name both sides send (default {MODEL}); DSPy "
                        "prices every call and scans its whole model table for a name it does not know, about "
                        "1.4 ms per call on both sides: try a known one, e.g. openai/gpt-4o-mini")
    parser.add_argument("--out", default="artifacts/bench", help="folder for client_overhead.json and report.md")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    seeds = args.seeds or (SEEDS_QUICK if args.quick else SEEDS_FULL)
    mode = "custom" if args.seeds else ("quick" if args.quick else "full")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(seeds, Path(args.out), mode=mode, profile_seeds=args.profile_seeds, rounds=args.rounds,
                            model=args.model, log=log)
    print(render_markdown(results))
    print(f"\nwrote {Path(args.out) / 'client_overhead.json'} and {Path(args.out) / 'report.md'}")
    return 0 if results["pipeline"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
