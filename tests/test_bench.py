"""The benchmarks' plumbing: corpus generator, report sections, ratios and targets, and a 2k-passage run.

No timing assertions: the run happens in this process (no child processes, numpy backend only, so no
numba JIT) and only checks that the JSON and report.md are written with the expected keys and that every
ratio is taken against the baseline of the same run.
"""

import importlib.util
import json

import pytest

from bench import retrieval
from bench.corpus import CorpusSpec, generate, sample_queries
from bench.report import read_report_section, write_report_section


def test_corpus_is_deterministic_titled_and_30_to_90_words():
    passages = generate(CorpusSpec(300, seed=3))
    assert passages == generate(CorpusSpec(300, seed=3))
    assert passages != generate(CorpusSpec(300, seed=4))
    assert len({p.id for p in passages}) == 300
    for passage in passages:
        assert passage.text.startswith(passage.title + " ")
        assert 30 <= len(passage.text.split()) <= 90


def test_queries_are_2_to_6_words_of_one_passage():
    passages = generate(CorpusSpec(200))
    queries = sample_queries(passages, 50, seed=5)
    assert queries == sample_queries(passages, 50, seed=5)
    vocabularies = [set(p.text.lower().rstrip(".").split()) for p in passages]
    for query in queries:
        words = query.split()
        assert 2 <= len(words) <= 6 and len(set(words)) == len(words)
        assert any(set(words) <= vocabulary for vocabulary in vocabularies)


def test_report_sections_are_replaced_in_place_and_others_kept(tmp_path):
    report = tmp_path / "report.md"
    write_report_section("retrieval", "## R\nfirst", report)
    write_report_section("generation", "## G\nkept", report)
    write_report_section("retrieval", "## R\nsecond", report)
    assert read_report_section("retrieval", report) == "## R\nsecond"
    assert read_report_section("generation", report) == "## G\nkept"
    text = report.read_text()
    assert "first" not in text and text.index("## R") < text.index("## G")


def _query(median_ms, load_s=1.0, peak=100.0):
    return {"median_ms": median_ms, "p95_ms": median_ms * 2, "load_s": load_s, "peak_rss_mb": peak}


def test_ratios_are_against_the_same_run_baseline():
    size = {"build": {"numpy": {"build_s": 10.0, "peak_rss_mb": 500.0},
                      "numba": {"build_s": 8.0, "peak_rss_mb": 600.0}},
            "query": {"numpy/memory": _query(10.0, 2.0, 300.0), "numpy/mmap": _query(12.5, 0.5, 150.0),
                      "numba/memory": _query(0.2, 2.0, 400.0), "numba/mmap": _query(0.25, 1.0, 450.0)},
            "rank_bm25": {"median_ms": 150.0, "build_s": 20.0}}
    ratios = retrieval.compute_ratios(size)
    assert ratios["baseline"] == "numpy/memory"
    assert ratios["query_speedup"] == {"numpy/memory": 1.0, "numpy/mmap": 0.8, "numba/memory": 50.0,
                                       "numba/mmap": 40.0}
    assert ratios["load_time"]["numpy/mmap"] == 0.25 and ratios["peak_memory"]["numba/mmap"] == 1.5
    assert ratios["build_speedup"] == {"numpy": 1.0, "numba": 1.25}
    assert ratios["rank_bm25_over_ours"]["numba/mmap"] == 600.0
    assert ratios["rank_bm25_build_over_ours"] == 2.0


def test_targets_pass_fail_and_skip():
    fast = retrieval.fast_backend(1_000_000)
    million = {"build": {fast: {"build_s": 200.0, "peak_rss_mb": 3900.0}},
               "query": {f"{fast}/mmap": _query(4.0, peak=1000.0)}}
    million["ratios"] = retrieval.compute_ratios(million)
    outcomes = {t["name"]: (t["value"], t["status"]) for t in retrieval.evaluate_targets({"1000000": million})}
    assert outcomes == {"build_1m": (200.0, "FAIL"), "query_1m": (4.0, "PASS"), "peak_memory_1m": (3900.0, "PASS"),
                        "vs_rank_bm25_100k": (None, "SKIP")}


def test_a_2k_run_writes_json_and_report_with_same_run_ratios(tmp_path):
    rank_queries = 5 if importlib.util.find_spec("rank_bm25") else 0
    results = retrieval.run_benchmark([2_000], tmp_path, mode="smoke", queries=30, rank_queries=rank_queries,
                                      backends=("numpy",), isolate=False, log=lambda message: None)
    data = json.loads((tmp_path / "retrieval.json").read_text())
    assert data == json.loads(json.dumps(results))
    assert {"benchmark", "mode", "machine", "settings", "sizes", "targets", "runtime_s"} <= set(data)
    size = data["sizes"]["2000"]
    assert {"build_s", "tokenize_s", "bm25s_index_s", "save_s", "peak_build_mb", "peak_rss_mb"} <= set(
        size["build"]["numpy"])
    assert set(size["query"]) == {"numpy/memory", "numpy/mmap"}
    base = size["query"]["numpy/memory"]
    for name, measured in size["query"].items():
        assert {"load_s", "rss_loaded_mb", "first_query_s", "median_ms", "p95_ms", "peak_rss_mb"} <= set(measured)
        assert measured["n"] == 30
        assert size["ratios"]["query_speedup"][name] == round(base["median_ms"] / measured["median_ms"], 2)
    if rank_queries:
        assert size["rank_bm25"]["n"] == 5
        assert size["ratios"]["rank_bm25_over_ours"]["numpy/mmap"] == round(
            size["rank_bm25"]["median_ms"] / size["query"]["numpy/mmap"]["median_ms"], 2)
    assert [t["status"] for t in data["targets"] if t["size"] == 1_000_000] == ["SKIP"] * 3
    section = read_report_section("retrieval", tmp_path / "report.md")
    assert "numpy/memory (baseline)" in section and "### Targets" in section
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("sizes", ["abc", "5", "100000,"])
def test_bad_sizes_are_refused_before_anything_runs(sizes, tmp_path):
    with pytest.raises(SystemExit):
        retrieval.main(["--sizes", sizes, "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()
