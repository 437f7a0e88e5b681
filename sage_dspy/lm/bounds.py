"""Caps on what DSPy keeps in memory per LM call, so a long generate run stays flat.

DSPy's defaults suit a notebook, not a 2,000-seed run of about 40 LM calls a seed. Each call's prompt and
response (about 7 KB) is kept by the LM, by EVERY module on the call stack (up to 10,000 entries each, so a
rarely called module such as the judge keeps entries from the whole run) and in a global list; each Predict
call adds (module, inputs, prediction) to the global trace (10,000); the response cache keeps up to a million
responses in memory beside its disk tier, whose SQLite shards each grow a page cache (up to 32 MB) and a
memory map (up to 64 MB) with the cache. bench/memory.py measured, over 2,000 seeds, RSS still climbing by
150 MB per 1,000 seeds with the offline LM and 255 MB over HTTP with DSPy's defaults.

`apply_memory_bounds()` lowers each cap that still has its default, so a value the user chose
(`dspy.configure(max_history_size=...)`, `dspy.configure_cache(memory_max_entries=...)`) is kept. It never calls
`dspy.configure`, which would make the calling thread the only one allowed to configure DSPy.
"""

import functools
import sys
from dataclasses import dataclass

import dspy
from dspy import clients
from dspy.clients import base_lm


@dataclass(frozen=True)
class MemoryBounds:
    history: int  # entries per LM and per module (`settings.max_history_size`)
    global_history: int  # entries in dspy.inspect_history's list (`base_lm.MAX_HISTORY_SIZE`)
    trace: int  # (module, inputs, prediction) entries in `settings.trace` (`settings.max_trace_size`)
    cache_entries: int  # responses in the response cache's in-memory LRU tier
    disk_cache_pages: int  # SQLite page cache per disk-cache shard and thread (diskcache's `sqlite_cache_size`)
    disk_mmap_bytes: int  # SQLite memory map per disk-cache shard (diskcache's `sqlite_mmap_size`)


# DSPy 3.4.1's and diskcache 5.6's values.
DSPY_DEFAULTS = MemoryBounds(history=10_000, global_history=10_000, trace=10_000, cache_entries=1_000_000,
                             disk_cache_pages=2**13, disk_mmap_bytes=2**26)

SAGE_BOUNDS = MemoryBounds(
    # `inspect_history(n)` is for looking at the last few calls: 100 is the last two or three seeds.
    history=100,
    global_history=100,
    # Optimizers read one example's whole trace (BootstrapFewShot, GEPA): a SAGE example makes up to about 250
    # Predict calls (k=4 rollouts x 11 steps x 4 rounds, plus the generator, judge and reviser); 1,000 leaves
    # room for larger k and rounds. Outside optimizers nothing reads the global trace.
    trace=1_000,
    # Within a run the memory tier only saves a disk read (about a millisecond) on an exact repeat (a resumed
    # run, the judge at temperature 0); the disk tier still holds every response. 1,000 responses (about 5 KB
    # each) is the last 50 seeds or so.
    cache_entries=1_000,
    # 64 pages of 4 KB: 256 KB per shard, 4 MB per thread over the 16 shards. The OS page cache keeps the
    # files warm anyway, and the memory map put the whole cache in RSS (bench/memory.py, http path: the same
    # seconds per seed with 64 pages and no map). The price is paid with many threads writing: at 256 calls in
    # flight (bench/throughput.py) 64 pages gave 0.75 of the ideal, 256 pages 0.78, 512 pages 0.83 and
    # diskcache's 8,192 0.82; but from 256 pages up the http run's RSS grew 50 MB per 1,000 seeds (quick mode).
    disk_cache_pages=64,
    disk_mmap_bytes=0,
)


def _settings_defaults() -> dict:
    """DSPy's process-wide settings (what `dspy.configure` writes), without claiming the configuring thread."""
    return sys.modules[type(dspy.settings).__module__].main_thread_config


def apply_memory_bounds(bounds: MemoryBounds = SAGE_BOUNDS, *, force: bool = False) -> MemoryBounds:
    """Set each cap that still has its default (every cap with `force`); returns the caps now in effect.
    Idempotent, and cheap after the first call. `apply_memory_bounds(DSPY_DEFAULTS, force=True)` restores
    DSPy's values. The disk cache's SQLite settings are stored in its folder, so they last beyond the process."""
    defaults = _settings_defaults()
    with dspy.settings.lock:
        for key, value, dspy_value in (("max_history_size", bounds.history, DSPY_DEFAULTS.history),
                                       ("max_trace_size", bounds.trace, DSPY_DEFAULTS.trace)):
            if force or defaults.get(key) == dspy_value:
                defaults[key] = value
        trace = defaults.get("trace")
        if isinstance(trace, list) and len(trace) > defaults["max_trace_size"]:
            del trace[:len(trace) - defaults["max_trace_size"]]
    if force or base_lm.MAX_HISTORY_SIZE == DSPY_DEFAULTS.global_history:
        base_lm.MAX_HISTORY_SIZE = bounds.global_history
        # DSPy pops one entry per new one, so a list already over the cap would stay over it.
        del base_lm.GLOBAL_HISTORY[:max(len(base_lm.GLOBAL_HISTORY) - bounds.global_history, 0)]
    _bound_response_cache(bounds, force)
    return current_bounds()


def current_bounds() -> MemoryBounds:
    defaults, cache = _settings_defaults(), vars(dspy).get("cache")
    pending = getattr(clients._get_dspy_cache, "bounds", DSPY_DEFAULTS)  # for a cache not built yet
    memory = getattr(cache, "memory_cache", None)
    disk = getattr(cache, "disk_cache", None) if getattr(cache, "enable_disk_cache", False) else None
    return MemoryBounds(
        history=defaults["max_history_size"], global_history=base_lm.MAX_HISTORY_SIZE,
        trace=defaults["max_trace_size"],
        cache_entries=pending.cache_entries if cache is None else getattr(memory, "maxsize", 0),
        disk_cache_pages=pending.disk_cache_pages if cache is None else _disk_setting(disk, "sqlite_cache_size"),
        disk_mmap_bytes=pending.disk_mmap_bytes if cache is None else _disk_setting(disk, "sqlite_mmap_size"))


# ---------------------------------------------------------------- the response cache (dspy.cache)

def _bound_response_cache(bounds: MemoryBounds, force: bool) -> None:
    """Bound the built cache; before it is built (DSPy builds it on the first LM call), wrap DSPy's builder so
    it comes out bounded, which keeps `apply_memory_bounds` from creating the disk cache's folder."""
    cache = vars(dspy).get("cache")
    if cache is not None:
        _bound_cache(cache, bounds, force)
        return
    build = getattr(clients._get_dspy_cache, "__wrapped__", clients._get_dspy_cache)
    if bounds == DSPY_DEFAULTS:
        clients._get_dspy_cache = build
        return

    @functools.wraps(build)
    def build_bounded():
        built = build()
        _bound_cache(built, bounds, force=True)
        return built

    build_bounded.bounds = bounds
    clients._get_dspy_cache = build_bounded


def _bound_cache(cache, bounds: MemoryBounds, force: bool) -> None:
    from cachetools import LRUCache

    memory = getattr(cache, "memory_cache", None)
    if getattr(cache, "enable_memory_cache", False) and isinstance(memory, LRUCache) \
            and memory.maxsize != bounds.cache_entries \
            and (force or memory.maxsize == DSPY_DEFAULTS.cache_entries):
        resized = LRUCache(maxsize=bounds.cache_entries)
        for key in list(memory)[-bounds.cache_entries:]:
            resized[key] = memory[key]
        cache.memory_cache = resized  # one assignment: a put racing with it lands in the old tier, a lost entry
    disk = getattr(cache, "disk_cache", None)
    if not getattr(cache, "enable_disk_cache", False) or not hasattr(disk, "reset"):
        return
    for key, value, default in (("sqlite_cache_size", bounds.disk_cache_pages, DSPY_DEFAULTS.disk_cache_pages),
                                ("sqlite_mmap_size", bounds.disk_mmap_bytes, DSPY_DEFAULTS.disk_mmap_bytes)):
        current = _disk_setting(disk, key)
        if current != value and (force or current == default):
            disk.reset(key, value)  # every shard: stored in its Settings table, applied to new connections


def _disk_setting(disk, key: str) -> int | None:
    try:
        return getattr(disk, key)
    except (AttributeError, AssertionError):  # not a diskcache cache (FanoutCache asserts on unknown names)
        return None
