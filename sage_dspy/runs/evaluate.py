"""`evaluate`: the paper's intrinsic table for several recipes on the same seeds, by round count.

A record keeps every round's verdict, so one run with R rounds gives the rows for +0 .. +R rounds: after r
rounds a seed stands where its round min(r, rounds used - 1) left it (an accepted pair stays accepted). Runs
are reused: a `generate` run whose settings match is read back instead of paid for again.
"""

import contextlib
import json
from dataclasses import replace
from pathlib import Path

from sage_dspy.jsonl import read_jsonl
from sage_dspy.method.feedback import MIN_KEPT_SEARCHES
from sage_dspy.runs.config import GenerateConfig, identified
from sage_dspy.runs.generate import generate
from sage_dspy.runs.summary import summarize
from sage_dspy.outputs import REPORT, check_output_folder
from sage_dspy.runs.folder import RECORDS_FILE, check_out_folder, run_settings

DEFAULT_RECIPES = ("generator_only", "resample", "sage")
def as_of_round(record: dict, rounds: int) -> dict:
    """The record as it stood after `rounds` revision rounds (round 0 is the generator's pair)."""
    if record["error"] or not record["rounds"]:
        return record
    past = record["rounds"][min(rounds, len(record["rounds"]) - 1)]
    accepted = past["verdict"] == "accepted"
    return {**record, "correct": past["correct"], "avg_at_k": past["avg_at_k"], "searches": past["searches"],
            "accepted": accepted, "kept": accepted and past["searches"] >= MIN_KEPT_SEARCHES}


def table_by_round(records: list[dict], max_rounds: int) -> dict[int, dict]:
    """{rounds: summary} for 0 .. max_rounds, using report.summarize on each view."""
    return {r: summarize([as_of_round(record, r) for record in records]) for r in range(max_rounds + 1)}


def run_key(config: GenerateConfig) -> dict:
    return run_settings(config.to_dict())


def find_previous_run(config: GenerateConfig, runs_root: Path) -> Path | None:
    """A finished run folder under `runs_root` made with exactly these settings, if any."""
    wanted = run_key(config)
    for config_file in sorted(runs_root.glob("*/config.json")):
        folder = config_file.parent
        try:
            saved = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if run_settings(saved) == wanted and _finished(folder):
            return folder
    return None


def _finished(folder: Path) -> bool:
    """A summary is written at the end of a run; one stopped by a call budget is not finished."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return not summary.get("stopped")


def read_records(folder: Path) -> list[dict]:
    return read_jsonl(folder / RECORDS_FILE, label="run records",
                      fix=f"re-run `sage generate --out {folder} --fresh` to write it anew")


def check_outputs(base: GenerateConfig, recipes: tuple[str, ...], runs_root: Path, report: Path) -> None:
    """Before any recipe runs: the report folder, and the run folder of each recipe that has no earlier run
    to reuse, can take what evaluate writes (outputs.py's rule), so a bad --out never costs a whole evaluation."""
    check_output_folder(report, REPORT)
    for recipe in recipes:
        config = _recipe_config(base, recipe, runs_root)
        if find_previous_run(config, runs_root) is None:
            check_out_folder(config.out_dir)


def _recipe_config(base: GenerateConfig, recipe: str, runs_root: Path) -> GenerateConfig:
    return replace(base, recipe=recipe, out_dir=runs_root / f"{base.corpus_label()}-{recipe}")


def evaluate_recipes(base: GenerateConfig, recipes: tuple[str, ...], runs_root: Path, *, passages=None,
                     on_recipe=None, workers: int = 1, engine=None, breaker=None) -> dict[str, dict]:
    """Each recipe on the same seeds and targets: {recipe: {"records", "folder", "reused", "by_round"}}.
    `workers` and `engine` are generate's (calls in flight; where seeds run): they change when records come,
    never what they hold, so they are no run settings and a run made with others is reused all the same. One
    engine session holds a Ray cluster for every recipe instead of starting one per run. `breaker`: generate's
    BreakerLimits; a tripped one stops the evaluation at that recipe (its folder resumes)."""
    base = identified(base)  # the index behind --retriever is part of what makes a run reusable
    results = {}
    with engine.session() if engine is not None else contextlib.nullcontext():
        for recipe in recipes:
            config = _recipe_config(base, recipe, runs_root)
            previous = find_previous_run(config, runs_root)
            if previous is not None:
                records, folder, reused = read_records(previous), previous, True
            else:
                run = generate(config, passages=passages, workers=workers, engine=engine, breaker=breaker)
                records, folder, reused = run.records, run.records_path.parent, False
            results[recipe] = {"records": records, "folder": folder, "reused": reused,
                               "by_round": table_by_round(records, config.rounds)}
            if on_recipe:
                on_recipe(recipe, reused)
    return results
