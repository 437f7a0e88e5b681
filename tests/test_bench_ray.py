"""bench.ray_throughput's pure parts: the process tree whose CPU is the client's, CPU per call and the cores it
needs, the Ray-over-plain ratios, the target and the report. No server and no cluster."""

import os

from bench import ray_throughput as bench


def row(mode: str, n: int, ratio: float | None, cores: float | None = None, rate: float | None = None) -> dict:
    return {"mode": mode, "in_flight": n, "ratio": ratio, "client_cpu_cores": cores, "calls_per_s": rate,
            "ideal_calls_per_s": n / 2}


def test_the_client_is_the_process_and_everything_under_it():
    parents = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert bench.children_of(10, parents) == {11, 12, 13}
    assert bench.children_of(12, parents) == set()
    assert bench.tree_cpu_seconds(os.getpid()) >= 0


def test_cpu_per_call_and_the_cores_the_ideal_needs():
    # 1.5 cores busy for 150 calls/s: 10 ms a call, so 512 in flight at 2 s (256 calls/s) needs 2.56 cores
    measured = bench.per_call(row("ray", 512, 0.59, cores=1.5, rate=150.0))
    assert measured == {"client_cpu_ms_per_call": 10.0, "cores_for_ideal": 2.56}
    assert bench.per_call(row("ray", 512, None)) == {}


def test_ray_is_compared_with_plain_at_each_n_measured_in_both():
    rows = [row("plain", 64, 0.95), row("ray", 64, 0.95), row("plain", 512, 0.5), row("ray", 512, 0.6),
            row("plain", 1024, 0.3)]
    assert bench.versus(rows) == [{"in_flight": 64, "plain": 0.95, "ray": 0.95, "ray_over_plain": 1.0},
                                  {"in_flight": 512, "plain": 0.5, "ray": 0.6, "ray_over_plain": 1.2}]
    assert bench.target_row(rows) == {"name": "ray_ratio_at_512", "limit": 0.9, "value": 0.6, "status": "FAIL"}
    assert bench.target_row(rows[:2])["status"] == "SKIP"
    assert bench.target_row([row("ray", 512, 0.93)])["status"] == "PASS"


def test_the_report_shows_every_row_and_the_target():
    rows = [{**row("plain", 512, 0.5, cores=1.2, rate=128.0), "first_seed_call_s": 8.0},
            {**row("ray", 512, 0.6, cores=1.8, rate=153.6), "first_seed_call_s": 19.0, "error": "boom"}]
    results = {"machine": {"cpu": "x", "cores": 2, "python": "3.11", "dspy": "3.4"}, "mode": "quick",
               "started": "now", "runtime_s": 1.0,
               "settings": {"server_latency_s": 2.0, "ray_local_cpus": 2}, "rows": rows,
               "versus": bench.versus(rows), "target": bench.target_row(rows)}
    text = bench.render_markdown(results)
    assert "| 512 | ray | 153.6 | 256.0 | 0.6 |" in text and "boom" in text
    assert "| 512 | 0.5 | 0.6 | 1.2 |" in text and "**FAIL**" in text
