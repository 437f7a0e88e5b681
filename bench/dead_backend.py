"""What a backend that dies mid-run costs before the run's breaker stops it, and whether a plain re-run repairs it.

    python -m bench.dead_backend --quick   # 20 seeds per backend (about 2 min on 2 cores)
    python -m bench.dead_backend           # 40 seeds, the demo's (about 4 min)

For each backend, the retriever (`sage serve-index --corpus bundled`, a real process) and the LM (the offline
LM's HTTP server, `python -m sage_dspy.offline.server`, as `openai/sage-offline`), on 127.0.0.1:

1. the baseline: the run uninterrupted (its LM calls per seed are the unit of waste, 1.0x);
2. the same run, the backend killed with SIGKILL once a quarter of the seeds are recorded: the breaker's default
   limits (5 in a row, or 50% of the last 20 calls) stop it; measured: the exit, the seeds left void, and the
   LM calls those void seeds spent (paid for nothing, redone on resume);
3. the backend restarted on the same port and the same call again (a resume): its records must equal the
   baseline's apart from timing.

The LM runs with the offline LM's seed (0: attempt k sends seed k) and one DSPy retry per call
(`num_retries=1`) so that each call to the dead server fails in seconds; DSPy's response cache is off (a cached reply would hide the dead server). Writes
<out>/dead_backend.json and the "dead_backend" section of <out>/report.md.
"""

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.report import machine, markdown_table, save_results
from sage_dspy.breaker import BackendDown, BreakerLimits
from sage_dspy.jsonl import read_jsonl
from sage_dspy.lm.roles import ROLES
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.folder import failed_at_service
from sage_dspy.runs.generate import generate
from sage_dspy.search.corpus import load_corpus

SECTION = "dead_backend"
LM_MODEL = "openai/sage-offline"
BENCH_KEY = "sk-bench-not-a-secret"  # the offline server takes any key; this one goes to 127.0.0.1 only
READY_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_backend(kind: str, port: int, folder: Path) -> subprocess.Popen:
    """The backend as its own process on `port`, returned once it answers."""
    command = ([sys.executable, "-m", "sage_dspy", "serve-index", "--corpus", "bundled", "--port", str(port)]
               if kind == "retriever" else
               [sys.executable, "-m", "sage_dspy.offline.server", "--port", str(port), "--idle-exit", "600"])
    log = (folder / f"{kind}-{port}-{time.monotonic_ns()}.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder)
    probe = f"http://127.0.0.1:{port}/health" if kind == "retriever" else f"http://127.0.0.1:{port}/stats"
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {kind} server exited with {process.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"the {kind} server did not answer within {READY_S:g} s")


def config_for(kind: str, port: int, seeds: int, out: Path, index_root: Path) -> GenerateConfig:
    common = {"seeds": seeds, "min_target": 2, "max_target": 5, "out_dir": out, "index_root": index_root}
    if kind == "retriever":
        return GenerateConfig(**common, retriever=f"http://127.0.0.1:{port}/retrieve")
    return GenerateConfig(**common, lms={role: LM_MODEL for role in ROLES},
                          lm_options={"api_base": f"http://127.0.0.1:{port}/v1", "num_retries": 1, "seed": 0})


def without_timing(records: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "seconds"} for record in records]


def measure(kind: str, seeds: int, passages, work: Path, log=print) -> dict:
    port, index_root = free_port(), work / "indexes"
    server = start_backend(kind, port, work)
    try:
        log(f"[dead_backend] {kind}: the uninterrupted run ...")
        baseline = generate(config_for(kind, port, seeds, work / f"{kind}-whole", index_root), passages=passages)
        calls_per_seed = sum(r["lm_calls"] for r in baseline.records) / len(baseline.records)
        kill_after, recorded = max(1, seeds // 4), []

        def kill_once_enough(record: dict) -> None:
            recorded.append(record)
            if len(recorded) == kill_after:
                server.kill()
                server.wait()

        log(f"[dead_backend] {kind}: killed after {kill_after} seeds ...")
        cut = config_for(kind, port, seeds, work / f"{kind}-cut", index_root)
        started, stop_line = time.perf_counter(), ""
        try:
            generate(cut, passages=passages, on_record=kill_once_enough, breaker=BreakerLimits())
        except BackendDown as stopped:
            stop_line = str(stopped)
        stopped_after = time.perf_counter() - started
        records = read_jsonl(cut.out_dir / "records.jsonl")
        void = [r for r in records[kill_after:] if failed_at_service(r)]
        wasted = sum(r["lm_calls"] for r in void)
        log(f"[dead_backend] {kind}: restarted, the same call again ...")
        server = start_backend(kind, port, work)
        resumed = generate(cut, passages=passages)
        equal = without_timing(resumed.records) == without_timing(baseline.records)
    finally:
        server.kill()
        server.wait()
    return {"backend": kind, "seeds": seeds, "killed_after_seeds": kill_after, "breaker_tripped": bool(stop_line),
            "stop_line": stop_line, "seconds_to_stop": round(stopped_after, 1),
            "seeds_recorded_after_kill": len(records) - kill_after, "void_seeds": len(void),
            "lm_calls_on_void_seeds": wasted, "baseline_lm_calls_per_seed": round(calls_per_seed, 1),
            "waste_in_seeds": round(wasted / calls_per_seed, 2) if calls_per_seed else None,
            "resume_equals_uninterrupted": equal,
            "kept": sum(r["kept"] for r in resumed.records), "baseline_kept": sum(r["kept"] for r in baseline.records)}


def render_markdown(report: dict) -> str:
    rows = [[r["backend"], r["seeds"], r["killed_after_seeds"], "yes" if r["breaker_tripped"] else "NO",
             r["void_seeds"], r["lm_calls_on_void_seeds"], r["baseline_lm_calls_per_seed"],
             f"{r['waste_in_seeds']}x" if r["waste_in_seeds"] is not None else "-",
             "yes" if r["resume_equals_uninterrupted"] else "NO", f"{r['kept']} / {r['baseline_kept']}"]
            for r in report["results"]]
    return "\n".join([
        "## A backend killed mid-run: the cost before the breaker trips (offline LM, bundled corpus)", "",
        "Baseline 1.0x: the LM calls of one seed of the uninterrupted run. Breaker at its defaults "
        "(5 infrastructure failures in a row, or 50% of the last 20 calls).", "",
        markdown_table(["backend", "seeds", "killed after", "breaker tripped", "void seeds",
                        "LM calls on void seeds", "LM calls per seed (baseline)", "waste, in seeds",
                        "re-run = uninterrupted", "kept (re-run / baseline)"], rows), "",
        *[f"- {r['backend']}: `{r['stop_line']}`" for r in report["results"]],
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dead_backend", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 seeds per backend instead of 40")
    parser.add_argument("--out", default="artifacts/bench", help="folder for dead_backend.json and report.md")
    args = parser.parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    os.environ["OPENAI_API_KEY"] = BENCH_KEY  # this process only: the LM is the offline server on 127.0.0.1
    import dspy

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    passages = load_corpus("bundled")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sage-bench-dead-") as folder:
        results = [measure(kind, 20 if args.quick else 40, passages, Path(folder), log)
                   for kind in ("retriever", "lm")]
    report = {"mode": "quick" if args.quick else "full", "results": results, "machine": machine()}
    save_results(report, "dead_backend.json", SECTION, render_markdown, Path(args.out), started)
    print(render_markdown(report))
    print(f"\nwrote {Path(args.out) / 'dead_backend.json'} and {Path(args.out) / 'report.md'}")
    return 0 if all(r["breaker_tripped"] and r["resume_equals_uninterrupted"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
