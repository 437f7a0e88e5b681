"""`evaluate`: the paper's intrinsic table for several recipes on the same seeds, by round count.

A record keeps every round's verdict, so one run with R rounds gives the rows for +0 .. +R rounds: after r
rounds a seed stands where its round min(r, rounds used - 1) left it (an accepted pair stays accepted). Runs
are reused: a `generate` run whose settings match is read back instead of paid for again.
"""

import contextlib
import hashlib
import json
from dataclasses import replace
from pathlib import Path

from sage_dspy.jsonl import read_jsonl
from sage_dspy.method.feedback import MIN_KEPT_SEARCHES
from sage_dspy.runs.config import GenerateConfig, identified
from sage_dspy.runs.generate import generate
from sage_dspy.runs.program_names import program_label, slug
from sage_dspy.runs.summary import summarize
from sage_dspy.outputs import REPORT, check_output_folder
from sage_dspy.runs.folder import RECORDS_FILE, check_out_folder, run_settings, same_finished_run

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
    settings = config.to_dict()
    return next((config_file.parent for config_file in sorted(runs_root.glob("*/config.json"))
                 if same_finished_run(config_file.parent, settings)), None)


def read_records(folder: Path) -> list[dict]:
    return read_jsonl(folder / RECORDS_FILE, label="run records",
                      fix=f"re-run `sage generate --out {folder} --fresh` to write it anew")


def settings_hash(settings: dict) -> str:
    """8 hex digits of the settings: what tells two folders of one corpus and recipe apart."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_folder_name(config: GenerateConfig, label: str) -> str:
    """Named by everything that makes runs differ (another --seeds, --random-seed, program...): the parts a
    reader needs, then the hash of all the settings, so two evaluations never share a folder by accident."""
    return "-".join([config.corpus_label(), config.recipe, *([slug(label)] if label != config.recipe else []),
                     f"{config.seeds}seeds", f"seed{config.random_seed}", settings_hash(run_key(config))])


def report_folder_name(base: GenerateConfig, labels: list[str]) -> str:
    """The evaluation's report folder: corpus, seed, and a hash of the shared settings and the programs."""
    settings = {**run_key(base), "compared": labels}
    return "-".join([base.corpus_label(), f"{base.seeds}seeds", f"seed{base.random_seed}", settings_hash(settings)])


def recipe_configs(base: GenerateConfig, recipes: tuple[str, ...]) -> dict[str, tuple]:
    """{recipe: (config, None)} for `--recipes`: each recipe with its own prompts."""
    return {recipe: (replace(base, recipe=recipe), None) for recipe in recipes}


def program_configs(base: GenerateConfig, programs: dict[str, Path | None]) -> dict[str, tuple]:
    """{label: (config, compiled folder)} for `--programs` {source: folder}: one recipe, each program's prompts
    (folder None: the baseline, the recipe's own). The config records the source as typed; tables show its
    short label (the source itself where two labels would be the same)."""
    labels = [program_label(source) for source in programs]
    unique = len(set(labels)) == len(labels)
    return {label if unique else source: (replace(base, program="" if folder is None else source), folder)
            for label, (source, folder) in zip(labels, programs.items())}


def check_outputs(configs: dict[str, tuple[GenerateConfig, Path | None]], runs_root: Path, report: Path) -> None:
    """Before any run: the report folder, and the run folder of each config that has no earlier run to reuse,
    can take what evaluate writes (outputs.py's rule), so a bad --out never costs a whole evaluation."""
    check_output_folder(report, REPORT)
    for label, (config, _) in configs.items():
        config = placed(config, label, runs_root)
        if find_previous_run(config, runs_root) is None:
            check_out_folder(config.out_dir)


def placed(config: GenerateConfig, label: str, runs_root: Path) -> GenerateConfig:
    """`config` writing to its own folder under `runs_root`, named by its settings."""
    return replace(config, out_dir=runs_root / run_folder_name(config, label))


def evaluate_configs(configs: dict[str, tuple[GenerateConfig, Path | None]], runs_root: Path, *, passages=None,
                     on_recipe=None, workers: int = 1, engine=None, breaker=None) -> dict[str, dict]:
    """Each (config, compiled program folder) on the same seeds: {label: {"records", "folder", "reused",
    "by_round", "config"}}. A finished run of the same settings anywhere under `runs_root` is read back;
    otherwise the run goes to (or resumes in) a folder named by its settings. `workers` and `engine` are
    generate's (calls in flight; where seeds run): they change when records come, never what they hold, so
    they are no run settings and a run made with others is reused all the same. One engine session holds a
    Ray cluster for every run instead of starting one per run. `breaker`: generate's BreakerLimits; a tripped
    one stops the evaluation at that run (its folder resumes)."""
    results = {}
    with engine.session() if engine is not None else contextlib.nullcontext():
        for label, (config, program_folder) in configs.items():
            # the index behind --retriever is part of what makes a run reusable (asked once: the CLI's base has it)
            config = identified(placed(config, label, runs_root))
            previous = find_previous_run(config, runs_root)
            if previous is not None:
                records, folder, reused = read_records(previous), previous, True
            else:
                run = generate(config, passages=passages, workers=workers, engine=engine, breaker=breaker,
                               program_folder=program_folder)
                records, folder, reused = run.records, run.records_path.parent, False
            results[label] = {"records": records, "folder": folder, "reused": reused, "config": config,
                              "program_folder": program_folder,
                              "by_round": table_by_round(records, config.rounds)}
            if on_recipe:
                on_recipe(label, reused)
    return results
