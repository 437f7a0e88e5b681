"""bench.throughput's pure parts and the server counters it reads: corpus cloning, window arithmetic, targets,
the report. No server latency and no subprocess: this runs in well under a second."""

import argparse
import json
import time

import pytest

from bench import throughput
from bench.report import read_report_section, save_results
from sage_dspy.search.corpus import load_corpus
from sage_dspy.offline import http as offline_http

ROWS = [{"id": "a", "title": "Alpha", "text": "Alpha is a river."},
        {"id": "b", "title": "Beta", "text": "Beta is a town on the Alpha."}]


def stats(monotonic: float, work_done: float, completion_seconds: float, served: int) -> dict:
    return {"monotonic": monotonic, "work_done": work_done, "completion_seconds": completion_seconds,
            "served": served}


def test_seeds_keep_the_workers_busy_with_spares():
    for n in (1, 64, 256):
        assert throughput.seeds_for(n) > 2 * n


def test_cloned_rows_have_distinct_ids_and_titles_and_the_same_texts():
    cloned = throughput.clone_rows(ROWS, 5)
    assert len(cloned) == 6  # 3 copies of 2
    assert len({row["id"] for row in cloned}) == len({(row["title"], row["text"]) for row in cloned}) == 6
    assert [row["text"] for row in cloned] == [row["text"] for row in ROWS] * 3
    assert cloned[:2] == [{**row, "id": row["id"] + "~0"} for row in ROWS]  # the first copy keeps its titles
    assert throughput.clone_rows(ROWS, 1) == throughput.clone_rows(ROWS, 2)  # at least one whole copy


def test_written_corpus_loads_with_every_clone_as_its_own_passage(tmp_path):
    source, path = tmp_path / "world.jsonl", tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    assert throughput.write_corpus(path, 7, source=source) == 8
    passages = load_corpus(path)
    assert len(passages) == 8 and len({p.id for p in passages}) == 8  # the loader dropped no clone


def test_bundled_world_clones_to_enough_seeds_for_256(tmp_path):
    needed = throughput.seeds_for(256)
    count = throughput.write_corpus(tmp_path / "corpus.jsonl", needed)
    assert count >= needed and len(load_corpus(tmp_path / "corpus.jsonl")) == count


def test_window_rate_ideal_ratio_and_mean_in_flight():
    before = stats(100.0, 50.0, 400.0, 48)
    after = stats(110.0, 350.0, 1000.0, 349)
    result = throughput.window(before, after, in_flight=64, latency=2.0)
    assert result == {"window_s": 10.0, "served": 301, "calls_per_s": 30.0, "ideal_calls_per_s": 32.0,
                      "ratio": 0.938, "mean_in_flight": 60.0}
    with pytest.raises(ValueError):
        throughput.window(after, before, in_flight=64)


def test_targets_pass_fail_and_skip():
    rows = throughput.target_rows([{"in_flight": 64, "ratio": 0.9}, {"in_flight": 1, "ratio": 0.2}],
                                  {64: 0.90, 128: 0.8, 256: 0.75})
    assert [(row["in_flight"], row["status"]) for row in rows] == [(64, "PASS"), (128, "SKIP"), (256, "SKIP")]
    rows = throughput.target_rows([{"in_flight": 256, "ratio": 0.749}, {"in_flight": 64, "error": "died"}])
    assert [(row["in_flight"], row["value"], row["status"]) for row in rows] == [(64, None, "SKIP"),
                                                                                  (256, 0.749, "FAIL")]


def test_cpu_share_in_cores():
    assert throughput.cpu_share(1.0, 4.0, 6.0) == 0.5
    assert throughput.cpu_share(None, 4.0, 6.0) is None and throughput.cpu_share(1.0, 2.0, 0) is None
    assert throughput.process_cpu_seconds(-1) is None


def test_server_work_done_grows_smoothly_and_counts_each_call_once():
    counters = offline_http.Stats()
    counters.begin(1, 2.0)
    counters.begin(2, 0.0)  # a call with no latency (or a fault) adds nothing until it is served
    admitted = counters.active[1][0]
    assert counters.work_done(admitted + 1.0) == pytest.approx(0.5)
    assert counters.work_done(admitted + 9.0) == pytest.approx(1.0)  # waiting counts at most one call
    counters.served += 1
    counters.end(1)
    counters.end(1)  # the handler's own clean-up after it was served: no effect
    assert counters.work_done(admitted + 9.0) == 1.0 and list(counters.active) == [2]
    counters.end(2)
    snapshot = counters.to_dict(offline_http.ServerConfig())
    assert snapshot["completions_in_flight"] == 0 and snapshot["work_done"] == 1.0
    assert snapshot["completion_seconds"] >= 0 and snapshot["monotonic"] >= admitted


def test_report_has_the_curve_the_clients_and_the_targets(tmp_path):
    point = {"in_flight": 64, "pool": 100, "calls_per_s": 30.0, "ideal_calls_per_s": 32.0, "ratio": 0.938,
             "mean_in_flight": 60.0, "min_in_flight_seen": 58, "client_cpu_cores": 0.2, "server_cpu_cores": 0.05,
             "startup_and_ramp_s": 5.0, "reached_in_flight": True, "seeds_finished": 0, "seed_errors": 0}
    capped = {**point, "in_flight": 256, "ratio": 0.4, "reached_in_flight": False, "ramp_peak": 100}
    client = {"kind": "threads", "in_flight": 256, "pool": 512, "calls_per_s": 120.0, "ideal_calls_per_s": 128.0,
              "ratio": 0.938, "mean_in_flight": 240.0, "client_cpu_cores": 0.3, "reached_in_flight": True}
    results = {"mode": "test", "started": "now", "runtime_s": 1.0,
               "machine": {"cpu": "cpu", "cores": 2, "python": "3.11", "dspy": "3.4.1"},
               "settings": {"server_latency_s": 2.0, "window_s": 10.0, "client_window_s": 6.0, "corpus_passages": 560,
                            "dspy_pool": 100},
               "pipeline": [point, capped], "diagnostics": [{**capped, "pool": 512, "ratio": 0.85}],
               "clients": [client], "targets": throughput.target_rows([point, capped])}
    text = throughput.render_markdown(results)
    assert "| 64 | 30.0 | 32.0 | 0.938 |" in text and "in flight never reached N (peak 100)" in text
    assert "raised from 100 to 512" in text and "| 256 | threads | 512 (raised) | 120.0 |" in text
    assert "ratio_at_64" in text and "**PASS**" in text and "**FAIL**" in text
    saved = save_results(results, "throughput.json", throughput.SECTION, throughput.render_markdown, tmp_path,
                         time.perf_counter())
    assert read_report_section(throughput.SECTION, tmp_path / "report.md") == throughput.render_markdown(saved)
    assert json.loads((tmp_path / "throughput.json").read_text())["targets"] == results["targets"]
    assert "loadavg_1m_at_end" in saved["machine"] and saved["runtime_s"] < 60


def test_points_are_checked():
    assert throughput._points("1,64,256") == (1, 64, 256)
    for bad in ("0", "300", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            throughput._points(bad)
