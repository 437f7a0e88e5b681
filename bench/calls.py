"""LM calls per accepted pair: the lean protocol against the paper's, on the same seeds, with the offline LM.

    python -m bench.calls --quick        # the demo's settings: 40 seeds, targets 2-5 (about 30 s)
    python -m bench.calls                # also the paper's targets 3-7 and the resample recipe (about 3 min)

The paper's protocol (baseline, 1.0x) runs all K attempts at every pair and has the LM judge rule on every
answer. `lean` (generate's default) stops a pair's attempts once one of them makes it too easy and skips the
judge call when the answer matches the gold after normalisation. Both run the same seeds, in process, one
seed at a time; `lean, attempts at once` runs each pair's K attempts in parallel (with early stop, attempts
already under way when the pair is settled are stopped at their next call, and the calls they made are
spent for nothing). Every run must give the same accepted pairs (seed, question, answer) as the paper's
protocol; the ratio is only meaningful when it does.

Target: lean's LM calls per accepted pair <= 0.7x the paper protocol's, with the same accepted pairs, at the
demo's settings. Writes <out>/calls.json and the "calls" section of <out>/report.md.
"""

import sage_dspy  # noqa: F401  (first: offline environment defaults)

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.report import markdown_table, write_report_section
from sage_dspy.search.corpus import load_corpus
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.generate import generate

TARGET_RATIO = 0.7
SECTION = "calls"
# (name, recipe, seeds, low target, high target); the first is the one checked against the target.
SETTINGS_QUICK = (("demo", "sage", 40, 2, 5),)
SETTINGS_FULL = SETTINGS_QUICK + (("paper targets", "sage", 100, 3, 7), ("resample", "resample", 100, 2, 7))
VARIANTS = (("paper", "paper", False), ("lean", "lean", False), ("lean, attempts at once", "lean", True))


def run_variant(setting: tuple, protocol: str, parallel: bool, passages, work: Path) -> dict:
    name, recipe, seeds, low, high = setting
    out = work / f"{name}-{protocol}-{parallel}".replace(" ", "_")
    config = GenerateConfig(recipe=recipe, seeds=seeds, min_target=low, max_target=high, protocol=protocol,
                            out_dir=out, index_root=work / "indexes")
    started = time.perf_counter()
    records = generate(config, passages=passages, fresh=True, parallel_attempts=parallel).records
    accepted = sorted((r["seed_id"], r["question"], r["answer"]) for r in records if r["accepted"])
    calls = sum(r["lm_calls"] for r in records)
    attempts = sum(len(past["attempts"]) for r in records for past in r["rounds"])
    return {"calls": calls, "accepted": len(accepted), "accepted_pairs": accepted, "attempts": attempts,
            "calls_per_accepted": calls / len(accepted) if accepted else None,
            "seconds": round(time.perf_counter() - started, 1), "failed": sum(bool(r["error"]) for r in records)}


def run_benchmark(settings: tuple, log=print) -> dict:
    passages = load_corpus("bundled")
    results = []
    with tempfile.TemporaryDirectory(prefix="sage-bench-calls-") as folder:
        for setting in settings:
            runs = {}
            for label, protocol, parallel in VARIANTS:
                log(f"[calls] {setting[0]}: {label} ...")
                runs[label] = run_variant(setting, protocol, parallel, passages, Path(folder))
            base = runs["paper"]
            for run in runs.values():
                run["same_accepted"] = run["accepted_pairs"] == base["accepted_pairs"]
                run["ratio"] = (run["calls_per_accepted"] / base["calls_per_accepted"]
                                if run["calls_per_accepted"] and base["calls_per_accepted"] else None)
            for run in runs.values():
                del run["accepted_pairs"]
            results.append({"setting": dict(zip(("name", "recipe", "seeds", "min_target", "max_target"), setting)),
                            "runs": runs})
    checked = results[0]["runs"]["lean"]
    passed = checked["same_accepted"] and checked["ratio"] is not None and checked["ratio"] <= TARGET_RATIO
    return {"results": results, "target": {"rule": f"lean calls per accepted pair <= {TARGET_RATIO}x paper, "
                                                   "same accepted pairs, demo settings",
                                           "value": checked["ratio"], "pass": passed}}


def render_markdown(report: dict) -> str:
    rows = []
    for result in report["results"]:
        s = result["setting"]
        for label, run in result["runs"].items():
            rows.append([f"{s['name']} ({s['recipe']}, {s['seeds']} seeds, S {s['min_target']}-{s['max_target']})",
                         label, run["calls"], run["attempts"], run["accepted"],
                         f"{run['calls_per_accepted']:.1f}" if run["calls_per_accepted"] else "-",
                         f"{run['ratio']:.3f}x" if run["ratio"] is not None else "-",
                         "yes" if run["same_accepted"] else "NO", run["seconds"]])
    target = report["target"]
    return "\n".join([
        "## LM calls per accepted pair (offline LM, same seeds)", "",
        "Baseline 1.0x: the paper's protocol (all K attempts, the LM judge on every answer). "
        "`lean`: early stop once an attempt makes the pair too easy, no judge call on a normalised match.", "",
        markdown_table(["setting", "protocol", "LM calls", "attempts", "accepted", "calls / accepted",
                        "vs paper", "same accepted pairs", "seconds"], rows), "",
        markdown_table(["target", "value", "result"],
                       [[target["rule"], f"{target['value']:.3f}x" if target["value"] else "-",
                         "PASS" if target["pass"] else "FAIL"]]),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the demo's settings only")
    parser.add_argument("--out", default="artifacts/bench", help="folder for calls.json and report.md")
    args = parser.parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    report = run_benchmark(SETTINGS_QUICK if args.quick else SETTINGS_FULL, log=log)
    report["mode"] = "quick" if args.quick else "full"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calls.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    markdown = render_markdown(report)
    write_report_section(SECTION, markdown, out / "report.md")
    print(markdown)
    print(f"\nwrote {out / 'calls.json'} and {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
