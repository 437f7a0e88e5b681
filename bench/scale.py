"""Wiki-scale benchmark: `SearchIndex.write` (the bounded-memory build) and `SearchIndex.load` at 1M and 5M
passages, and what wiki-18 (21M) would need.

    python -m bench.scale --quick                     # 200k passages: a few minutes on 2 cores
    python -m bench.scale                             # 1M and 5M passages (make bench FULL=1): about 40 min
    python -m bench.scale --sizes 1000000 --workdir /work/bigdata/scale --keep-index

The corpus is bench/corpus.py's synthetic one, streamed (`iter_passages`): no process ever holds all its
passages. Every step runs in its own child process (`--child`), so each peak RSS (VmHWM) is that step's own:

- build: `SearchIndex.write(iter_passages(spec), dir)`; then (outside the timed part, after the peak is
  read) the queries are sampled from the written store;
- load, cold and warm: `SearchIndex.load(dir)` and its first `search`, then each query once. The cold
  process gets an empty numba cache (NUMBA_CACHE_DIR), so its first query compiles the scorer; the warm one
  reads the cache the cold one wrote: what every later process on the machine pays;
- baseline (sizes up to --baseline-max, 1M by default): today's in-memory path, the corpus as a list and
  `SearchIndex.build` (`bm25s.BM25.index`), the 1.0x of the build ratios.

Writes <out>/scale.json and the "scale" section of <out>/report.md. See bench/README.md.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.corpus import CorpusSpec, generate, iter_passages, sample_queries
from bench.report import loadavg, markdown_table, save_results
from bench.retrieval import _dir_mb, _time_searches, latency_stats, machine, peak_rss_mb, rss_mb
from sage_dspy.search.corpus_index import open_corpus_index
from sage_dspy.search.index import SearchIndex, _query_terms

SIZES_QUICK = (200_000,)
SIZES_FULL = (1_000_000, 5_000_000)
WIKI_18 = 21_015_324  # passages in Search-R1's wiki-18.jsonl
K = 3
RESULT_MARK = "BENCH-RESULT "
TARGETS = (  # name, size, what, limit, unit
    ("peak_memory_5m", 5_000_000, "peak RSS, worst 5M process (build, loads)", 8000.0, "MB"),
    ("query_p50_5m", 5_000_000, "median query, fast backend, warm process", 10.0, "ms"),
    ("load_5m", 5_000_000, "load: SearchIndex.load + first query (numba cache warm)", 5.0, "s"),
)


# ---------------------------------------------------------------- the steps (one child process each)

def task_build(size: int, workdir: str, queries: int, seed: int) -> dict:
    directory = Path(workdir) / "index"
    shutil.rmtree(directory, ignore_errors=True)
    start = time.perf_counter()
    meta = SearchIndex.write(iter_passages(CorpusSpec(size, seed=seed)), directory)
    result = {"build_s": round(time.perf_counter() - start, 1), "peak_build_mb": peak_rss_mb(),
              "passages": meta["passages"], "index_disk_mb": _dir_mb(directory)}
    arrays = json.loads((directory / "params.index.json").read_text())
    result["vocabulary"] = len(json.loads((directory / "vocab.index.json").read_text(encoding="utf-8")))
    result["num_docs"] = arrays["num_docs"]
    index = SearchIndex.load(directory)
    result["postings"] = int(index._retriever.scores["indptr"][-1])
    sampled = sample_queries(index.passages, queries + 1, seed=seed + 1)  # the first one is the warm-up query
    (Path(workdir) / "queries.json").write_text(json.dumps(sampled), encoding="utf-8")
    return result


def task_load(size: int, workdir: str) -> dict:
    queries = json.loads((Path(workdir) / "queries.json").read_text(encoding="utf-8"))
    start = time.perf_counter()
    index = SearchIndex.load(Path(workdir) / "index")
    open_s = time.perf_counter() - start
    rss_open = rss_mb()
    index.search(queries[0], K)
    load_s = time.perf_counter() - start
    seconds = _time_searches(lambda q: index.search(q, K), queries[1:])
    result = {"open_s": round(open_s, 3), "first_query_s": round(load_s - open_s, 3), "load_s": round(load_s, 3),
              "rss_open_mb": rss_open, "backend": index._retriever.backend, **latency_stats(seconds),
              "rss_end_mb": rss_mb(), "empty_results": sum(not index.search(q, K) for q in queries[1:21])}
    if index._retriever.backend == "numba":
        result["bm25s_numba"], result["ours_again"] = bm25s_numba_latency(index, queries[1:])
    return result


def bm25s_numba_latency(index: SearchIndex, queries: list[str]) -> tuple[dict, dict]:
    """The baseline of the fast backend's query (search/scorer.py): bm25s's own numba scorer through
    `retrieve`, compiled first (untimed: bm25s caches no compilation), then both timed query by query in turns,
    each first on every other query, so neither pays alone for first touching the mapped arrays (the timings
    above paid for it: they are the target's). Returns (bm25s's, ours) from that pass."""
    def bm25s_search(query: str):
        terms = [t for t in _query_terms(query) if t in index._retriever.vocab_dict]
        return index._retriever.retrieve([terms], k=K, show_progress=False, n_threads=0) if terms else None

    bm25s_search(queries[0])
    theirs, ours = [], []
    for turn, query in enumerate(queries):
        pair = [(theirs, bm25s_search), (ours, lambda q: index.search(q, K))]
        for seconds, search in (pair if turn % 2 else pair[::-1]):
            seconds += _time_searches(search, [query])
    return latency_stats(theirs), latency_stats(ours)


def task_corpus(size: int, workdir: str, seed: int) -> dict:
    """The commands' own path (generate, serve-index, ...): the corpus as a JSONL file (written first,
    untimed) streamed into its index by `open_corpus_index`, then opened again from the source alone."""
    source = Path(workdir) / "corpus.jsonl"
    with open(source, "w", encoding="utf-8") as file:
        for passage in iter_passages(CorpusSpec(size, seed=seed)):
            file.write(json.dumps({"id": passage.id, "title": passage.title, "text": passage.text}) + "\n")
    root = Path(workdir) / "corpus-indexes"
    try:
        start = time.perf_counter()
        first = open_corpus_index(source, root=root)
        first_s, peak = time.perf_counter() - start, peak_rss_mb()
        start = time.perf_counter()
        again = open_corpus_index(source, root=root)
        again_s = time.perf_counter() - start
        assert len(first) == len(again) == size, (len(first), len(again), size)
        return {"first_open_s": round(first_s, 1), "peak_first_open_mb": peak, "open_again_s": round(again_s, 3),
                "source_mb": round(source.stat().st_size / 1e6, 1)}
    finally:
        source.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def task_baseline(size: int, seed: int) -> dict:
    """What SearchIndex.open did before the bounded build: the whole corpus in memory, then bm25s.BM25.index."""
    passages = generate(CorpusSpec(size, seed=seed))
    start = time.perf_counter()
    SearchIndex.build(passages)
    return {"build_s": round(time.perf_counter() - start, 1), "peak_build_mb": peak_rss_mb()}


TASKS = {"build": task_build, "load": task_load, "corpus": task_corpus, "baseline": task_baseline}


def run_task(task: dict, env: dict | None = None) -> dict:
    command = [sys.executable, "-m", "bench.scale", "--child", json.dumps(task)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
                          env={**os.environ, **(env or {})})
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}
    return json.loads(lines[-1][len(RESULT_MARK):])


def run_child(task: dict) -> dict:
    start = time.perf_counter()
    result = TASKS[task["kind"]](**task["args"])
    return {**result, "wall_s": round(time.perf_counter() - start, 1), "peak_rss_mb": peak_rss_mb(),
            "loadavg_1m": loadavg()}


# ---------------------------------------------------------------- one run

def measure_size(size: int, workdir: Path, *, queries: int, seed: int, baseline: bool, corpus: bool = False,
                 log=print) -> dict:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cache = workdir / "numba-cache"
    shutil.rmtree(cache, ignore_errors=True)
    result = {}
    steps = [("build", "build", {"workdir": str(workdir), "queries": queries, "seed": seed}, None),
             ("load_cold", "load", {"workdir": str(workdir)}, {"NUMBA_CACHE_DIR": str(cache)}),
             ("load_warm", "load", {"workdir": str(workdir)}, {"NUMBA_CACHE_DIR": str(cache)})]
    if corpus:
        steps.append(("corpus", "corpus", {"workdir": str(workdir), "seed": seed}, None))
    if baseline:
        steps.append(("baseline", "baseline", {"seed": seed}, None))
    for label, kind, args, env in steps:
        log(f"[{size:,}] {label} ...")
        result[label] = run_task({"kind": kind, "args": {"size": size, **args}}, env)
        log(f"[{size:,}] {label}: " + (result[label].get("error") or f"{result[label]['wall_s']} s"))
        if label == "build" and "error" in result[label]:
            break
    shutil.rmtree(cache, ignore_errors=True)
    base, build = result.get("baseline", {}), result.get("build", {})
    if "build_s" in base and "build_s" in build:
        result["ratios"] = {"build_time_vs_in_memory": round(build["build_s"] / base["build_s"], 2),
                            "build_peak_vs_in_memory": round(build["peak_build_mb"] / base["peak_build_mb"], 3)}
    return result


def worst_peak(result: dict) -> float | None:
    peaks = [result.get(step, {}).get("peak_rss_mb") for step in ("build", "load_cold", "load_warm")]
    if "corpus" in result:  # the commands' path, where it ran
        peaks.append(result["corpus"].get("peak_rss_mb"))
    return None if None in peaks else max(peaks)


FIGURES = (  # name, step, key: what is extrapolated
    ("build s", "build", "build_s"), ("build peak MB", "build", "peak_build_mb"),
    ("index on disk MB", "build", "index_disk_mb"), ("load s (warm)", "load_warm", "load_s"),
    ("load peak MB (warm)", "load_warm", "peak_rss_mb"), ("median query ms", "load_warm", "median_ms"),
    ("p95 query ms", "load_warm", "p95_ms"))


def extrapolate(sizes: dict, to: int = WIKI_18) -> dict:
    """Each figure on the line through the two largest sizes measured, at `to` passages."""
    measured = sorted((int(size), result) for size, result in sizes.items() if "error" not in result.get("build", {}))
    if len(measured) < 2:
        return {}
    (n1, r1), (n2, r2) = measured[-2:]
    out = {"from_sizes": [n1, n2], "passages": to, "not_growing": []}
    for name, step, key in FIGURES:
        v1, v2 = r1.get(step, {}).get(key), r2.get(step, {}).get(key)
        if isinstance(v1, (int, float)) and isinstance(v2, (int, float)):
            # a figure that fell between the two sizes (the first query's pages were in the cache, say) has
            # no measured growth: its line would run below zero, so the larger size's figure stands for it
            out[name] = round(v2 + max(0.0, v2 - v1) * (to - n2) / (n2 - n1), 1)
            if v2 < v1:
                out["not_growing"].append(name)
    return out


def evaluate_targets(sizes: dict) -> list[dict]:
    outcomes = []
    for name, size, what, limit, unit in TARGETS:
        result = sizes.get(str(size))
        value = None
        if result and name == "peak_memory_5m":
            value = worst_peak(result)
        elif result and name == "query_p50_5m":
            value = result.get("load_warm", {}).get("median_ms")
        elif result and name == "load_5m":
            value = result.get("load_warm", {}).get("load_s")
        status = "SKIP" if value is None else ("PASS" if value <= limit else "FAIL")
        outcomes.append({"name": name, "what": what, "limit": limit, "unit": unit, "value": value, "status": status})
    return outcomes


def run_benchmark(sizes, out: Path, *, workdir: Path | None = None, mode: str = "custom", queries: int = 300,
                  seed: int = 0, baseline_max: int = 1_000_000, corpus_max: int = 1_000_000,
                  keep_index: bool = False, log=print) -> dict:
    out = Path(out)
    workdir = Path(workdir) if workdir else out / "work-scale"
    started = time.perf_counter()
    results = {"benchmark": "scale", "mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "machine": machine(), "settings": {"k": K, "queries": queries, "seed": seed,
                                                  "baseline_max": baseline_max, "corpus_max": corpus_max},
               "sizes": {}}
    try:
        for size in sizes:  # the files are rewritten after every size: a long run stopped midway keeps its numbers
            results["sizes"][str(size)] = measure_size(size, workdir / str(size), queries=queries, seed=seed,
                                                       baseline=size <= baseline_max,
                                                       corpus=size <= corpus_max, log=log)
            if not keep_index:
                shutil.rmtree(workdir / str(size), ignore_errors=True)
            _write(results, out, started)
    finally:
        if not keep_index:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def _write(results: dict, out: Path, started: float) -> None:
    results["targets"] = evaluate_targets(results["sizes"])
    results["wiki_18"] = extrapolate(results["sizes"])
    save_results(results, "scale.json", "scale", render_markdown, out, started)


# ---------------------------------------------------------------- rendering

def _fmt(value, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}{suffix}" if isinstance(value, float) else f"{value:,}{suffix}"


def _baseline_query(warm: dict) -> str:
    """bm25s's scorer against ours, from the pass that timed them in turns."""
    theirs, ours = warm.get("bm25s_numba"), warm.get("ours_again")
    if not theirs or not ours or not ours.get("median_ms"):
        return "-"
    return (f"{_fmt(theirs['median_ms'])} / {_fmt(theirs['p95_ms'])} vs {_fmt(ours['median_ms'])} / "
            f"{_fmt(ours['p95_ms'])} ({theirs['median_ms'] / ours['median_ms']:.1f}x)")


def render_markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"## Scale (bounded-memory build, on-disk passages), {results['mode']} mode",
             f"Measured {results['started']} on {m['cpu']}, {m['cores']} cores, {m.get('memory_gb')} GB RAM; "
             f"whole run {results['runtime_s']} s; 1-minute load average {m.get('loadavg_1m_at_start')} at start, "
             f"{m.get('loadavg_1m_at_end')} at end.", "", "### Targets", "",
             markdown_table(["target", "measured", "limit", "status"],
                            [[f"{t['name']} ({t['what']})", _fmt(t["value"], " " + t["unit"]),
                              "≤ " + _fmt(t["limit"], " " + t["unit"]), t["status"]] for t in results["targets"]]),
             "", "### Per size", ""]
    rows = []
    for size, r in results["sizes"].items():
        b, cold, warm, base = (r.get(k, {}) for k in ("build", "load_cold", "load_warm", "baseline"))
        rows.append([f"{int(size):,}", b.get("error", "")[:120] or _fmt(b.get("build_s"), " s"),
                     _fmt(b.get("peak_build_mb")), _fmt(b.get("index_disk_mb")), _fmt(b.get("postings")),
                     f"{_fmt(cold.get('load_s'), ' s')} / {_fmt(warm.get('load_s'), ' s')}",
                     _fmt(warm.get("open_s"), " s"), _fmt(warm.get("median_ms")), _fmt(warm.get("p95_ms")),
                     _baseline_query(warm),
                     _fmt(worst_peak(r)),
                     f"{_fmt(base.get('build_s'), ' s')}, {_fmt(base.get('peak_build_mb'))} MB" if base else "-",
                     f"{r['ratios']['build_time_vs_in_memory']}x / {r['ratios']['build_peak_vs_in_memory']}x"
                     if "ratios" in r else "-"])
    lines.append(markdown_table(
        ["passages", "SearchIndex.write", "build peak MB", "index on disk MB", "postings",
         "load + first query: cold / warm", "SearchIndex.load alone", "median ms", "p95 ms",
         "in turns, bm25s's numba scorer vs ours: median / p95 ms (their medians' ratio)", "worst peak MB",
         "baseline: SearchIndex.build in memory", "time / peak vs baseline"], rows))
    via_file = [[f"{int(size):,}", r["corpus"].get("error", "")[:120] or _fmt(r["corpus"].get("source_mb")),
                 _fmt(r["corpus"].get("first_open_s"), " s"), _fmt(r["corpus"].get("peak_rss_mb")),
                 _fmt(r["corpus"].get("open_again_s"), " s")]
                for size, r in results["sizes"].items() if "corpus" in r]
    if via_file:
        lines += ["", "### The commands' path: a JSONL file through `open_corpus_index`", "",
                  markdown_table(["passages", "JSONL MB", "first open (read, stream into the index)", "peak MB",
                                  "open again (from the source record)"], via_file)]
    wiki = results.get("wiki_18")
    if wiki:
        lines += ["", f"### Extrapolated to wiki-18 ({wiki['passages']:,} passages)", "",
                  f"On the line through {wiki['from_sizes'][0]:,} and {wiki['from_sizes'][1]:,} passages:", "",
                  markdown_table(["figure", "at 21M"],
                                 [[name, _fmt(wiki.get(name)) + (" (fell between the sizes: as measured at the "
                                                                  "larger)" if name in wiki.get("not_growing", ())
                                                                 else "")] for name, _, _ in FIGURES])]
    lines += ["", "Notes: each step is its own process, peak = its VmHWM (MB = 10^6 bytes). Load = "
              "`SearchIndex.load` + the first `search` (numba compiles its scorer there when its cache is cold; "
              "warm = the cache the cold process wrote). Median/p95: one `search(query, k=3)` per query, after "
              "the first. The synthetic vocabulary is fixed at 300k words; a real corpus's grows with its size."]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k passages only")
    parser.add_argument("--sizes", help="comma-separated corpus sizes, e.g. 1000000,5000000 (overrides --quick)")
    parser.add_argument("--out", default="artifacts/bench", help="folder for scale.json and report.md")
    parser.add_argument("--workdir", help="where the indexes are built (default <out>/work-scale); several GB at 5M")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-max", type=int, default=1_000_000,
                        help="largest size that also runs the in-memory baseline (it peaks at about 3 GB per 1M)")
    parser.add_argument("--corpus-max", type=int, default=1_000_000,
                        help="largest size that also runs the commands' path (a JSONL file through "
                             "open_corpus_index: a second build)")
    parser.add_argument("--keep-index", action="store_true", help="keep the built indexes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_MARK + json.dumps(run_child(json.loads(args.child))), flush=True)
        return 0
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes else \
        list(SIZES_QUICK if args.quick else SIZES_FULL)
    mode = "custom" if args.sizes else ("quick" if args.quick else "full")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = run_benchmark(sizes, Path(args.out), workdir=args.workdir, mode=mode, queries=args.queries,
                            seed=args.seed, baseline_max=args.baseline_max, corpus_max=args.corpus_max,
                            keep_index=args.keep_index, log=log)
    print(render_markdown(results))
    return 1 if any("error" in step for r in results["sizes"].values() for step in r.values()
                    if isinstance(step, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
