"""bench.client_overhead's plumbing on a 2-seed run against a real loopback server: the JSON and the report
section are written with the expected keys, and the ratio is taken from the two measurements of the same run.
No timing assertions."""

import json

from bench import client_overhead
from bench.report import read_report_section, write_report_section
from sage_dspy.method.calibration import JUDGE_CALIBRATION


def test_client_overhead_writes_json_and_its_report_section(tmp_path):
    report = tmp_path / "report.md"
    write_report_section("retrieval", "## Retrieval\nkept as is", report)

    results = client_overhead.run_benchmark(2, tmp_path, mode="test", profile_seeds=1, log=lambda message: None)

    written = json.loads((tmp_path / "client_overhead.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(results))
    assert {"benchmark", "mode", "machine", "settings", "pipeline", "bare", "profile", "ratio",
            "extra_cpu_ms_per_call", "target", "native_path", "runtime_s"} <= set(written)
    pipeline, bare = written["pipeline"], written["bare"]
    for side in (pipeline, bare):
        assert {"cpu_s", "cpu_ms_per_call", "mean_prompt_chars", "server"} <= set(side)
        assert side["cpu_s"] > 0
    assert pipeline["errors"] == 0 and pipeline["seeds"] == 2
    # LM calls: what the server served for the generate call = records' calls + check_lms's probe + the judge's
    # calibration items
    assert pipeline["lm_calls"] == pipeline["records_lm_calls"] + 1 + len(JUDGE_CALIBRATION) > 2
    assert bare["calls"] == pipeline["lm_calls"] == bare["server"]["served"]
    assert abs(bare["mean_prompt_chars"] - pipeline["mean_prompt_chars"]) <= 0.05 * pipeline["mean_prompt_chars"]
    # the ratio is the two per-call figures of this run
    assert written["ratio"] == round(pipeline["cpu_ms_per_call"] / bare["cpu_ms_per_call"], 3)
    assert written["target"]["status"] == ("PASS" if written["ratio"] <= 2.0 else "FAIL")
    assert written["native_path"] and set(pipeline["server"]["clients"]) == {"lm15/stdlib"}
    assert written["profile"]["top"] and written["profile"]["extra_by_area"]

    section = read_report_section(client_overhead.SECTION, report)
    assert section is not None and f"{written['ratio']}x" in section and written["target"]["status"] in section
    assert read_report_section("retrieval", report) == "## Retrieval\nkept as is"
