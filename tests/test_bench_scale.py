"""bench.scale's arithmetic (targets, extrapolation, report) on hand-made results; the measuring itself is the
benchmark's, run by `python -m bench.scale`."""

from bench import scale


def size_result(build_s: float, peak: float, median: float, load_s: float) -> dict:
    return {"build": {"build_s": build_s, "peak_build_mb": peak, "index_disk_mb": 100.0, "peak_rss_mb": peak},
            "load_cold": {"load_s": 20.0, "peak_rss_mb": peak / 2},
            "load_warm": {"load_s": load_s, "median_ms": median, "p95_ms": 2 * median, "peak_rss_mb": peak / 2}}


def test_targets_read_the_5m_warm_process_and_the_worst_peak():
    sizes = {"5000000": size_result(1000.0, 7000.0, 9.0, 5.5)}
    outcomes = {t["name"]: (t["value"], t["status"]) for t in scale.evaluate_targets(sizes)}
    assert outcomes == {"peak_memory_5m": (7000.0, "PASS"), "query_p50_5m": (9.0, "PASS"), "load_5m": (5.5, "FAIL")}
    assert {t["status"] for t in scale.evaluate_targets({"1000000": sizes["5000000"]})} == {"SKIP"}


def test_extrapolation_follows_the_line_through_the_two_largest_sizes():
    sizes = {"100": size_result(1.0, 50.0, 0.1, 0.1), "1000000": size_result(10.0, 1000.0, 1.0, 1.0),
             "5000000": size_result(50.0, 3000.0, 5.0, 3.0)}
    wiki = scale.extrapolate(sizes, to=21_000_000)
    assert wiki["from_sizes"] == [1_000_000, 5_000_000]
    assert wiki["build s"] == 210.0 and wiki["build peak MB"] == 11000.0 and wiki["median query ms"] == 21.0
    assert scale.extrapolate({"5000000": sizes["5000000"]}) == {}
    sizes["5000000"]["load_warm"]["load_s"] = 0.5  # faster at 5M than at 1M: no growth to extrapolate
    wiki = scale.extrapolate(sizes, to=21_000_000)
    assert wiki["load s (warm)"] == 0.5 and wiki["not_growing"] == ["load s (warm)"]


def test_report_renders_sizes_targets_and_the_extrapolation():
    results = {"mode": "full", "started": "now", "runtime_s": 1.0, "targets": [],
               "machine": {"cpu": "cpu", "cores": 2, "memory_gb": 8},
               "sizes": {"1000000": size_result(10.0, 1000.0, 1.0, 1.0), "5000000": size_result(50.0, 3000.0, 5.0, 3.0)}}
    results["sizes"]["5000000"]["load_warm"].update(bm25s_numba={"median_ms": 20.0, "p95_ms": 30.0},
                                                    ours_again={"median_ms": 4.0, "p95_ms": 6.0})
    results["targets"] = scale.evaluate_targets(results["sizes"])
    results["wiki_18"] = scale.extrapolate(results["sizes"])
    text = scale.render_markdown(results)
    assert "| 5,000,000 | 50.00 s |" in text and "Extrapolated to wiki-18" in text and "| build s | 210.20 |" in text
    assert "| 20.00 / 30.00 vs 4.00 / 6.00 (5.0x) |" in text  # bm25s's own scorer against ours, in turns
    assert "### The commands' path" not in text
    results["sizes"]["1000000"]["corpus"] = {"source_mb": 700.0, "first_open_s": 150.0, "peak_rss_mb": 2500.0,
                                             "open_again_s": 0.4}
    text = scale.render_markdown(results)
    assert "| 1,000,000 | 700.00 | 150.00 s | 2,500.00 | 0.40 s |" in text
    assert scale.worst_peak(results["sizes"]["1000000"]) == 2500.0  # the commands' path counts where it ran
