"""sage_dspy.lm.bounds: DSPy's histories, trace and in-memory response cache stay under their caps over many calls,
a cap the user chose is kept, and applying the caps never claims DSPy's configuring thread."""

import threading

import dspy
import pytest
from dspy.clients import base_lm
from dspy.clients.cache import Cache

from sage_dspy.lm import bounds
from sage_dspy.lm.bounds import DSPY_DEFAULTS, MemoryBounds, apply_memory_bounds, current_bounds
from sage_dspy.lm.roles import offline_lm
from sage_dspy.runs import generate as pipeline
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.generate import generate
from sage_dspy.runs.program import build_program

SMALL = MemoryBounds(history=5, global_history=7, trace=9, cache_entries=3, disk_cache_pages=64, disk_mmap_bytes=0)


class Echo(dspy.Signature):
    """Repeat the text."""

    text: str = dspy.InputField()
    answer: str = dspy.OutputField()


@pytest.fixture(autouse=True)
def dspy_caps_restored(monkeypatch):
    """Every test starts from DSPy's own caps and leaves them so; the cache and its builder are put back."""
    monkeypatch.setattr(base_lm, "GLOBAL_HISTORY", [])
    monkeypatch.setattr(dspy.clients, "_get_dspy_cache", dspy.clients._get_dspy_cache)
    if "cache" in vars(dspy):
        monkeypatch.setattr(dspy, "cache", dspy.cache)
    apply_memory_bounds(DSPY_DEFAULTS, force=True)
    dspy.settings.trace.clear()
    yield
    apply_memory_bounds(DSPY_DEFAULTS, force=True)
    dspy.settings.trace.clear()


def test_histories_and_trace_stay_under_the_caps_over_many_offline_calls():
    caps = apply_memory_bounds(SMALL)
    assert (caps.history, caps.global_history, caps.trace) == (5, 7, 9)
    lm, predict = offline_lm(), dspy.Predict(Echo)
    with dspy.context(lm=lm):
        for i in range(40):
            predict(text=f"call {i}")
    assert len(lm.history) == len(predict.history) == 5
    assert len(base_lm.GLOBAL_HISTORY) == 7 and len(dspy.settings.trace) == 9
    assert "call 39" in lm.history[-1]["messages"][-1]["content"]  # the newest entries are the ones kept


def test_a_generate_run_keeps_every_history_under_the_cap(tiny_passages, tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(pipeline, "build_program", lambda *a, **k: built.append(build_program(*a, **k)) or built[0])
    apply_memory_bounds(SMALL)
    result = generate(GenerateConfig(corpus="tiny", seeds=4, out_dir=tmp_path / "run", index_root=tmp_path / "idx"),
                      passages=list(tiny_passages), fresh=True)
    assert sum(r["lm_calls"] for r in result.records) > 40  # far more calls than any cap
    program = built[0]
    owners = [module for _, module in program.named_sub_modules()] + list(program.lms.lms.values())
    assert max(len(owner.history) for owner in owners) == 5
    assert len(base_lm.GLOBAL_HISTORY) <= 7 and len(dspy.settings.trace) <= 9


def test_dspy_defaults_are_lowered_but_a_users_choice_is_kept():
    assert current_bounds().history == DSPY_DEFAULTS.history
    dspy.configure(max_history_size=50)
    caps = apply_memory_bounds()
    assert caps.history == 50  # the user's
    assert (caps.global_history, caps.trace) == (bounds.SAGE_BOUNDS.global_history, bounds.SAGE_BOUNDS.trace)
    assert apply_memory_bounds() == caps  # idempotent


def test_applying_from_another_thread_leaves_dspy_configurable_here():
    failures = []

    def apply():
        try:
            apply_memory_bounds(SMALL)
        except Exception as error:  # noqa: BLE001  (reported below)
            failures.append(error)

    worker = threading.Thread(target=apply)
    worker.start()
    worker.join()
    assert not failures and current_bounds().history == SMALL.history
    dspy.configure(lm=None)  # the thread that configured DSPy first still may


def test_a_built_cache_keeps_its_most_recent_responses_within_the_cap(monkeypatch):
    cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    monkeypatch.setattr(dspy, "cache", cache)
    for i in range(10):
        cache.put({"request": i}, f"response {i}")
    apply_memory_bounds(SMALL)
    assert cache.memory_cache.maxsize == 3 and len(cache.memory_cache) == 3
    assert [cache.get({"request": i}) for i in (6, 7, 8, 9)] == [None, "response 7", "response 8", "response 9"]
    for i in range(10, 20):
        cache.put({"request": i}, f"response {i}")
    assert len(cache.memory_cache) == 3


def test_a_cache_size_the_user_chose_is_kept(monkeypatch):
    cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None, memory_max_entries=50)
    monkeypatch.setattr(dspy, "cache", cache)
    apply_memory_bounds(SMALL)
    assert dspy.cache.memory_cache.maxsize == 50


def test_a_cache_not_built_yet_is_built_bounded_on_first_use(monkeypatch, tmp_path):
    monkeypatch.delattr(dspy, "cache", raising=False)
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy_cache"))
    apply_memory_bounds(SMALL)
    assert not (tmp_path / "dspy_cache").exists()  # nothing built at apply time
    assert current_bounds() == SMALL
    cache = dspy.cache  # DSPy builds it on first read, through the bounded builder
    assert cache.memory_cache.maxsize == 3
    assert (cache.disk_cache.sqlite_cache_size, cache.disk_cache.sqlite_mmap_size) == (64, 0)
    cache.put({"request": 1}, "response 1")
    assert cache.get({"request": 1}) == "response 1"
    apply_memory_bounds(DSPY_DEFAULTS, force=True)
    assert current_bounds() == DSPY_DEFAULTS


def test_the_memory_benchmark_sees_the_caps_hold(tmp_path, capsys):
    """bench.memory's plumbing on a 10-seed offline run in its child process: JSON, report section, targets."""
    import json

    from bench import memory
    from bench.report import read_report_section

    assert memory.main(["--seeds", "10", "--paths", "offline", "--every", "2", "--bounds", "on",
                        "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "memory.json").read_text(encoding="utf-8"))
    run = written["runs"]["offline"]
    assert [s["seeds"] for s in run["samples"]] == [0, 2, 4, 6, 8, 10] and run["errors"] == 0
    assert run["caps_end"]["history"] == bounds.SAGE_BOUNDS.history
    caps = {t["name"]: t for t in written["targets"]}
    assert caps["dspy_caps_offline"]["status"] == "PASS"
    assert caps["rss_slope_offline"]["status"] in ("PASS", "FAIL")  # measured (3 samples after warm-up), not judged
    assert "dspy_caps_offline" in read_report_section(memory.SECTION, tmp_path / "report.md")
