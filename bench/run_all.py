"""Every benchmark in sequence, one command for `make bench`:

    python -m bench.run_all [--quick] [--out artifacts/bench]

Runs bench.retrieval, bench.scale, bench.client_overhead, bench.calls, bench.throughput and bench.memory in turn, each
with the same --quick and --out; each writes its own JSON and its own section of <out>/report.md. Exit status: the first non-zero status of the benchmarks (a
benchmark that raises counts as 1 and does not stop the next one).
"""

import argparse
import sys
import time
import traceback

from bench import calls, client_overhead, memory, retrieval, scale, throughput

BENCHMARKS = (("retrieval", retrieval.main), ("scale", scale.main), ("client_overhead", client_overhead.main), ("calls", calls.main),
              ("throughput", throughput.main), ("memory", memory.main))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick mode of every benchmark")
    parser.add_argument("--out", default="artifacts/bench", help="folder for the JSON files and report.md")
    args = parser.parse_args(argv)
    common = ["--out", args.out] + (["--quick"] if args.quick else [])
    statuses = {}
    for name, run in BENCHMARKS:
        print(f"\n===== bench.{name} {' '.join(common)}", flush=True)
        started = time.perf_counter()
        try:
            statuses[name] = run(list(common))
        except Exception:  # noqa: BLE001  (one broken benchmark must not hide the others' numbers)
            traceback.print_exc()
            statuses[name] = 1
        print(f"===== bench.{name}: exit {statuses[name]} in {time.perf_counter() - started:.1f} s", flush=True)
    return next((status for status in statuses.values() if status), 0)


if __name__ == "__main__":
    sys.exit(main())
