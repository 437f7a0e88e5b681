"""Retrieval benchmark: sage_dspy's SearchIndex (bm25s) build, load and query speed, and peak memory.

    python -m bench.retrieval --quick                 # 100k passages, a few minutes on 2 cores
    python -m bench.retrieval                         # 100k and 1M passages
    python -m bench.retrieval --sizes 300000 --out artifacts/bench

Every configuration runs in a fresh child process (`--child`), so its peak memory (VmHWM) is its own and
numba's JIT is paid where a user pays it. Ratios are against a baseline measured in the same run: the
numpy backend with the index loaded into memory (1.0x). Writes <out>/retrieval.json and the "retrieval"
section of <out>/report.md. See bench/README.md for what each number means.
"""

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import bm25s
import numpy as np

from bench.corpus import CorpusSpec, generate, sample_queries
from bench.report import loadavg, markdown_table, save_results
from sage_dspy.search import index as retrieval
from sage_dspy.search.index import SearchIndex

SIZES_QUICK = (100_000,)
SIZES_FULL = (100_000, 1_000_000)
BACKENDS = ("numpy", "numba")
LOADS = ("memory", "mmap")
BASELINE = "numpy/memory"
RANK_BM25_MAX_SIZE = 100_000
K = 3
RESULT_MARK = "BENCH-RESULT "
MB = 1e6  # decimal megabytes throughout: the 4 GB target is 4000 MB

TARGETS = (  # name, size, what, limit, unit, higher_is_better
    ("build_1m", 1_000_000, "SearchIndex.build, fast backend", 180.0, "s", False),
    ("query_1m", 1_000_000, "median query, fast backend, mmap", 5.0, "ms", False),
    ("peak_memory_1m", 1_000_000, "peak RSS, worst 1M process", 4000.0, "MB", False),
    ("vs_rank_bm25_100k", 100_000, "median query speed-up over rank_bm25", 100.0, "x", True),
)


# ---------------------------------------------------------------- measuring inside one process

def _proc_status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    kb = _proc_status_kb("VmRSS")
    return round(kb * 1024 / MB, 1) if kb is not None else float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss where /proc is missing)."""
    kb = _proc_status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb * 1024 / MB, 1)


_peak_before_reset_mb = 0.0


def process_peak_rss_mb() -> float:
    """Peak resident memory of this process over its whole life, across reset_peak_rss() calls."""
    return max(_peak_before_reset_mb, peak_rss_mb())


def reset_peak_rss() -> bool:
    """Restart VmHWM at the current RSS (Linux >= 4.0), so the next peak belongs to the next phase."""
    global _peak_before_reset_mb
    _peak_before_reset_mb = process_peak_rss_mb()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def forced_backend(backend: str):
    """SearchIndex.build/load pick their backend with retrieval.choose_backend; pin it for one measurement."""
    original = retrieval.choose_backend
    retrieval.choose_backend = lambda n_passages: backend
    try:
        yield
    finally:
        retrieval.choose_backend = original


@contextlib.contextmanager
def phase_timer(phases: dict, label: str, owner, attribute: str):
    """Add the time spent inside owner.attribute (a function or method) to phases[label]."""
    original = owner.__dict__[attribute]
    target = getattr(owner, attribute)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return target(*args, **kwargs)
        finally:
            phases[label] = round(phases.get(label, 0.0) + time.perf_counter() - start, 3)

    setattr(owner, attribute, timed)
    try:
        yield phases
    finally:
        setattr(owner, attribute, original)


def latency_stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "median_ms": round(float(np.median(ms)), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
            "mean_ms": round(float(ms.mean()), 4), "qps": round(len(ms) / max(ms.sum() / 1000, 1e-12), 1)}


def _time_searches(search, queries: list[str]) -> list[float]:
    seconds = []
    for query in queries:
        start = time.perf_counter()
        search(query)
        seconds.append(time.perf_counter() - start)
    return seconds


def _dir_mb(directory: Path) -> float:
    return round(sum(f.stat().st_size for f in Path(directory).rglob("*") if f.is_file()) / MB, 1)


# ---------------------------------------------------------------- the measured configurations (one per process)

def task_build(size: int, backend: str, workdir: str, n_queries: int, seed: int, save: bool) -> dict:
    """Generate the corpus, SearchIndex.build it with `backend`; with save=True also save it and the queries."""
    start = time.perf_counter()
    passages = generate(CorpusSpec(size, seed=seed))
    result = {"corpus_s": round(time.perf_counter() - start, 2), "rss_corpus_mb": rss_mb(),
              "peak_corpus_mb": peak_rss_mb()}
    reset_peak_rss()
    phases: dict = {}
    with forced_backend(backend), phase_timer(phases, "tokenize_s", retrieval, "_tokenize"), \
            phase_timer(phases, "bm25s_index_s", bm25s.BM25, "index"):
        start = time.perf_counter()
        index = SearchIndex.build(passages)
        result["build_s"] = round(time.perf_counter() - start, 2)
    result.update(phases, other_s=round(result["build_s"] - sum(phases.values()), 2),
                  rss_built_mb=rss_mb(), peak_build_mb=peak_rss_mb(), vocab=len(index._retriever.vocab_dict),
                  postings=int(len(index._retriever.scores["data"])))
    if save:
        result.update(_save(index, Path(workdir), passages, n_queries, seed))
    return result


def _save(index: SearchIndex, workdir: Path, passages, n_queries: int, seed: int) -> dict:
    reset_peak_rss()
    phases: dict = {}
    with phase_timer(phases, "bm25s_save_s", bm25s.BM25, "save"):
        start = time.perf_counter()
        index.save(workdir / "index")
        save_s = round(time.perf_counter() - start, 2)
    queries = sample_queries(passages, n_queries + 1, seed=seed + 1)  # the first one is the warm-up query
    (workdir / "queries.json").write_text(json.dumps(queries), encoding="utf-8")
    return {"save_s": save_s, **phases, "peak_save_mb": peak_rss_mb(), "index_disk_mb": _dir_mb(workdir / "index")}


def task_query(size: int, backend: str, load: str, workdir: str) -> dict:
    """SearchIndex.load the saved index (mmap or in memory) with `backend`; time one search per query, k=3."""
    queries = json.loads((Path(workdir) / "queries.json").read_text(encoding="utf-8"))
    result = {"rss_start_mb": rss_mb()}
    phases: dict = {}
    with forced_backend(backend), phase_timer(phases, "bm25s_load_s", bm25s.BM25, "load"):
        start = time.perf_counter()
        index = SearchIndex.load(Path(workdir) / "index", mmap=load == "mmap")
        result["load_s"] = round(time.perf_counter() - start, 2)
    result.update(phases, passages_s=round(result["load_s"] - phases["bm25s_load_s"], 2), rss_loaded_mb=rss_mb())
    if index._retriever.backend != backend:
        raise RuntimeError(f"asked for the {backend} backend, SearchIndex.load gave {index._retriever.backend}")
    start = time.perf_counter()
    index.search(queries[0], K)  # numba compiles its scorer here (every new process); numpy has nothing to compile
    result["first_query_s"] = round(time.perf_counter() - start, 3)
    seconds = _time_searches(lambda q: index.search(q, K), queries[1:])
    result.update(latency_stats(seconds), rss_end_mb=rss_mb(),
                  empty_results=sum(not index.search(q, K) for q in queries[1:21]))
    return result


def task_rank_bm25(size: int, workdir: str, n_queries: int, seed: int) -> dict:
    """rank_bm25.BM25Okapi over the same tokens as SearchIndex (title x3 + text, stemmed, stopwords out)."""
    from rank_bm25 import BM25Okapi

    passages = generate(CorpusSpec(size, seed=seed))
    start = time.perf_counter()
    tokenized = retrieval._tokenize([retrieval._indexed_text(p) for p in passages])
    tokens = bm25s.tokenization.convert_tokenized_to_string_list(tokenized)
    tokenize_s = time.perf_counter() - start
    del tokenized
    start = time.perf_counter()
    okapi = BM25Okapi(tokens)
    init_s = time.perf_counter() - start
    del tokens
    queries = json.loads((Path(workdir) / "queries.json").read_text(encoding="utf-8"))[1:n_queries + 1]
    found = []
    seconds = _time_searches(lambda q: found.append(okapi.get_top_n(retrieval._query_terms(q), passages, n=K)), queries)
    with forced_backend("numpy"):
        ours = SearchIndex.load(Path(workdir) / "index", mmap=True)
    agree = sum(bool(hits) and hits[0].passage.id == top[0].id for hits, top in
                zip((ours.search(q, K) for q in queries), found))
    return {"tokenize_s": round(tokenize_s, 2), "init_s": round(init_s, 2), "build_s": round(tokenize_s + init_s, 2),
            **latency_stats(seconds), "top1_agreement": f"{agree}/{len(queries)}"}


TASKS = {"build": task_build, "query": task_query, "rank_bm25": task_rank_bm25}


def run_child(task: dict) -> dict:
    """Run one task in this process and add its memory figures."""
    result = {"rss_imports_mb": rss_mb()}
    start = time.perf_counter()
    result.update(TASKS[task["kind"]](**task["args"]))
    result.update(wall_s=round(time.perf_counter() - start, 2), peak_rss_mb=process_peak_rss_mb(),
                  loadavg_1m=loadavg())
    return result


def run_task(task: dict, *, isolate: bool = True) -> dict:
    """One task in a fresh `python -m bench.retrieval --child` (isolate=True) or in this process (tests)."""
    if not isolate:
        return {**run_child(task), "isolated": False}
    command = [sys.executable, "-m", "bench.retrieval", "--child", json.dumps(task)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}
    return {**json.loads(lines[-1][len(RESULT_MARK):]), "isolated": True}


# ---------------------------------------------------------------- one run: sizes, ratios, targets

def measure_size(size: int, workdir: Path, *, queries: int, rank_queries: int, seed: int,
                 backends=BACKENDS, isolate: bool = True, log=print) -> dict:
    workdir = workdir.resolve()  # child processes run in the repository root
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict = {"build": {}, "query": {}}

    def run(label: str, kind: str, **args) -> dict:
        log(f"[{size:,}] {label} ...")
        measured = run_task({"kind": kind, "args": {"size": size, **args}}, isolate=isolate)
        log(f"[{size:,}] {label}: " + (measured.get("error") or f"{measured['wall_s']} s"))
        return measured

    for i, backend in enumerate(backends):
        result["build"][backend] = run(f"build {backend}", "build", backend=backend, workdir=str(workdir),
                                       n_queries=queries, seed=seed, save=i == 0)
    for backend in backends:
        for load in LOADS:
            result["query"][f"{backend}/{load}"] = run(f"query {backend}/{load}", "query", backend=backend,
                                                       load=load, workdir=str(workdir))
    if size <= RANK_BM25_MAX_SIZE and rank_queries > 0 and importlib.util.find_spec("rank_bm25") is None:
        result["rank_bm25"] = {"error": "rank_bm25 is not installed: pip install rank_bm25"}
    elif size <= RANK_BM25_MAX_SIZE and rank_queries > 0:
        result["rank_bm25"] = run("rank_bm25", "rank_bm25", workdir=str(workdir), n_queries=rank_queries, seed=seed)
    result["ratios"] = compute_ratios(result)
    return result


def _ratio(numerator, denominator) -> float | None:
    if not isinstance(numerator, (int, float)) or not isinstance(denominator, (int, float)) or denominator <= 0:
        return None
    return round(numerator / denominator, 2)


def compute_ratios(size_result: dict) -> dict:
    """Every configuration against the same run's baseline (numpy, in memory); rank_bm25 against ours."""
    base_query = size_result["query"].get(BASELINE, {})
    base_build = size_result["build"].get(BASELINE.split("/")[0], {})
    ratios = {"baseline": BASELINE, "query_speedup": {}, "load_time": {}, "peak_memory": {}, "build_speedup": {}}
    for name, measured in size_result["query"].items():
        ratios["query_speedup"][name] = _ratio(base_query.get("median_ms"), measured.get("median_ms"))
        ratios["load_time"][name] = _ratio(measured.get("load_s"), base_query.get("load_s"))
        ratios["peak_memory"][name] = _ratio(measured.get("peak_rss_mb"), base_query.get("peak_rss_mb"))
    for name, measured in size_result["build"].items():
        ratios["build_speedup"][name] = _ratio(base_build.get("build_s"), measured.get("build_s"))
    rank = size_result.get("rank_bm25")
    if rank:
        ratios["rank_bm25_over_ours"] = {name: _ratio(rank.get("median_ms"), measured.get("median_ms"))
                                         for name, measured in size_result["query"].items()}
        ratios["rank_bm25_build_over_ours"] = _ratio(rank.get("build_s"), base_build.get("build_s"))
    return ratios


def fast_backend(size: int) -> str:
    """The backend SearchIndex itself picks for this corpus size (numba when installed, for large corpora)."""
    return retrieval.choose_backend(size)


def evaluate_targets(sizes: dict) -> list[dict]:
    outcomes = []
    for name, size, what, limit, unit, higher in TARGETS:
        value = _target_value(name, sizes.get(str(size)), fast_backend(size))
        status = "SKIP" if value is None else ("PASS" if (value >= limit if higher else value <= limit) else "FAIL")
        outcomes.append({"name": name, "size": size, "what": what, "limit": limit, "unit": unit,
                         "value": value, "status": status})
    return outcomes


def _target_value(name: str, result: dict | None, fast: str) -> float | None:
    if not result:
        return None
    if name == "build_1m":
        return result["build"].get(fast, {}).get("build_s")
    if name == "query_1m":
        return result["query"].get(f"{fast}/mmap", {}).get("median_ms")
    if name == "peak_memory_1m":
        peaks = [m.get("peak_rss_mb") for part in ("build", "query") for m in result[part].values()]
        return max(peaks) if peaks and None not in peaks else None
    if name == "vs_rank_bm25_100k":
        return result["ratios"].get("rank_bm25_over_ours", {}).get(f"{fast}/mmap")
    raise KeyError(name)


def machine() -> dict:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem = next((line.split()[1] for line in _read_lines("/proc/meminfo") if line.startswith("MemTotal")), None)
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory_gb": round(float(mem) * 1024 / 1e9, 1) if mem else None, "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_1m_at_start": loadavg(),
            "versions": {p: version(p) for p in ("bm25s", "numba", "numpy", "PyStemmer", "rank_bm25")}}


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def run_benchmark(sizes, out: Path, *, mode: str = "custom", queries: int = 300, rank_queries: int = 20,
                  seed: int = 0, backends=BACKENDS, isolate: bool = True, keep_index: bool = False, log=print) -> dict:
    """Measure every size, write <out>/retrieval.json and the report section, and return the results."""
    out = Path(out)
    started = time.perf_counter()
    results = {"benchmark": "retrieval", "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(), "settings": {"k": K, "queries": queries, "rank_bm25_queries": rank_queries,
                                                  "seed": seed, "backends": list(backends), "isolated": isolate,
                                                  "corpus": asdict(CorpusSpec(0, seed=seed)) | {"n_passages": None}},
               "sizes": {}}
    try:
        for size in sizes:
            results["sizes"][str(size)] = measure_size(size, out / "work" / str(size), queries=queries,
                                                       rank_queries=rank_queries, seed=seed, backends=backends,
                                                       isolate=isolate, log=log)
    finally:
        if not keep_index:
            shutil.rmtree(out / "work", ignore_errors=True)
    results["targets"] = evaluate_targets(results["sizes"])
    save_results(results, "retrieval.json", "retrieval", render_markdown, out, started)
    return results


# ---------------------------------------------------------------- rendering

def _fmt(value, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}{suffix}" if isinstance(value, float) else f"{value}{suffix}"


def render_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"## Retrieval (bm25s through `SearchIndex`), {results['mode']} mode",
             f"Measured {results['started']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, "
             f"Python {m['python']}, " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) +
             f". Whole run: {results['runtime_s']} s; 1-minute load average {m.get('loadavg_1m_at_start')} at start, "
             f"{m.get('loadavg_1m_at_end')} at end (above {m['cores']}, other work competed for the cores).",
             "", "### Targets", "",
             markdown_table(["target", "measured", "limit", "status"],
                            [[f"{t['name']} ({t['what']})", _fmt(t["value"], " " + t["unit"]),
                              ("≥ " if t["unit"] == "x" else "≤ ") + _fmt(t["limit"], " " + t["unit"]), t["status"]]
                             for t in results["targets"]])]
    for size, result in results["sizes"].items():
        lines += ["", f"### {int(size):,} passages", "", _build_table(result), "", _query_table(result)]
        if "rank_bm25" in result:
            lines += ["", _rank_table(result)]
    lines += ["", "Notes: ratios are against the baseline of the same run (numpy backend, index loaded in memory "
              "= 1.0x). Query latency is one `SearchIndex.search(query, k=3)` call (query tokenisation included), "
              f"{results['settings']['queries']} queries sampled from the corpus, after one untimed-for-the-median "
              "warm-up query: numba's JIT compile (paid once per process) is that first query and is excluded from "
              "median/p95. Each configuration runs in its own process; peak = that process's VmHWM (imports, "
              "corpus generation and all). MB = 10^6 bytes."]
    return "\n".join(lines)


def _build_table(result: dict) -> str:
    rows = []
    for backend, b in result["build"].items():
        if "error" in b:
            rows.append([backend, b["error"][:200]] + ["-"] * 7)
            continue
        rows.append([backend, _fmt(b["build_s"], " s"), _fmt(result["ratios"]["build_speedup"].get(backend), "x"),
                     f"{_fmt(b.get('tokenize_s'))} / {_fmt(b.get('bm25s_index_s'))} / {_fmt(b.get('other_s'))}",
                     _fmt(b.get("save_s"), " s"), _fmt(b["corpus_s"], " s"),
                     _fmt(b["peak_corpus_mb"]), _fmt(b["peak_build_mb"]), _fmt(b["peak_rss_mb"])])
    header = ["build backend", "SearchIndex.build", "speed-up vs numpy", "tokenize / bm25s index / other s", "save",
              "corpus gen", "peak MB: corpus", "peak MB: build", "peak MB: process"]
    return markdown_table(header, rows)


def _query_table(result: dict) -> str:
    rows = []
    ratios = result["ratios"]
    for name, q in result["query"].items():
        if "error" in q:
            rows.append([name, q["error"][:200]] + ["-"] * 8)
            continue
        rows.append([name + (" (baseline)" if name == BASELINE else ""), _fmt(q["load_s"], " s"),
                     _fmt(ratios["load_time"].get(name), "x"), _fmt(q["rss_loaded_mb"]), _fmt(q["first_query_s"], " s"),
                     _fmt(q["median_ms"]), _fmt(q["p95_ms"]), _fmt(ratios["query_speedup"].get(name), "x"),
                     _fmt(q["peak_rss_mb"]), _fmt(ratios["peak_memory"].get(name), "x")])
    header = ["backend/load", "load", "load time vs base", "RSS after load MB", "first query (JIT)", "median ms",
              "p95 ms", "query speed-up vs base", "peak MB", "peak vs base"]
    return markdown_table(header, rows)


def _rank_table(result: dict) -> str:
    rank, ratios = result["rank_bm25"], result["ratios"]
    if "error" in rank:
        return f"rank_bm25 failed: {rank['error'][:300]}"
    rows = [["rank_bm25 BM25Okapi", _fmt(rank["build_s"], " s"), _fmt(rank["median_ms"]), _fmt(rank["p95_ms"]),
             "1.0x", rank["top1_agreement"]]]
    rows += [[f"SearchIndex {name}", "", _fmt(result["query"][name].get("median_ms")),
              _fmt(result["query"][name].get("p95_ms")), _fmt(speedup, "x faster"), ""]
             for name, speedup in ratios["rank_bm25_over_ours"].items()]
    return markdown_table([f"vs rank_bm25 ({rank['n']} queries)", "build (tokenise + index)", "median ms", "p95 ms",
                           "speed-up", "top-1 same as ours"], rows)


# ---------------------------------------------------------------- command line

def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError(f"{text!r}: give corpus sizes of at least 10, e.g. 100000,1000000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k passages only (a few minutes on 2 cores)")
    parser.add_argument("--sizes", type=_sizes, help="comma-separated corpus sizes, e.g. 100000,1000000 "
                        "(overrides --quick)")
    parser.add_argument("--out", default="artifacts/bench", help="folder for retrieval.json and report.md")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per configuration")
    parser.add_argument("--rank-queries", type=int, default=20, help="timed rank_bm25 queries (0: skip rank_bm25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-index", action="store_true", help="keep <out>/work (the saved indexes)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_MARK + json.dumps(run_child(json.loads(args.child))), flush=True)
        return 0
    sizes = args.sizes or list(SIZES_QUICK if args.quick else SIZES_FULL)
    mode = "custom" if args.sizes else ("quick" if args.quick else "full")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(sizes, Path(args.out), mode=mode, queries=args.queries, rank_queries=args.rank_queries,
                            seed=args.seed, keep_index=args.keep_index, log=log)
    print(render_markdown(results))
    print(f"\nwrote {Path(args.out) / 'retrieval.json'} and {Path(args.out) / 'report.md'}")
    return 1 if any("error" in m for r in results["sizes"].values() for part in ("build", "query")
                    for m in r[part].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
