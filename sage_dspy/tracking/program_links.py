"""What a generate or evaluate run ran, said in MLflow: the program's source and compile run as tags, and the
prompt versions it ran linked to the run with MLflow's own prompt-to-run linking (the run page's "Registered
prompts", and the version's runs on the Prompts page).

The versions a compiled program holds are the ones its compile run linked (every predictor's, changed or not);
the recipe's own prompts are the versions tagged as the baseline. A program from a folder that was compiled
without tracking has no versions to link, and says so in a tag rather than guessing.
"""

import json
from pathlib import Path

from sage_dspy.runs.program_names import BASELINE, program_label
from sage_dspy.tracking.prompts import BASELINE_TAG, link_versions
from sage_dspy.tracking.runs import TrackedRun
from sage_dspy.tracking.sources import compile_run_of
from sage_dspy.tracking.store import warn_failed

LINKED_PROMPTS = "mlflow.linkedPrompts"  # MLflow's run tag: a JSON list of {"name", "version"}


def program_tags(source: str, folder: Path | None, recipe: str) -> dict[str, str]:
    """program.source (as typed, or the baseline), program.label (what tables call it), program.compile_run_id."""
    if not source:
        return {"program.source": f"{BASELINE} (the {recipe} recipe's own prompts)", "program.label": BASELINE}
    tags = {"program.source": source, "program.label": program_label(source)}
    compile_run = compile_run_of(folder) if folder is not None else ""
    tags["program.compile_run_id"] = compile_run or "unknown (compiled without tracking)"
    return tags


def link_program(run: TrackedRun, source: str, folder: Path | None, recipe: str) -> list[tuple[str, int]]:
    """Tag `run` with what it ran and link the prompt versions it ran; returns the (name, version) linked."""
    if run is None or run.run_id is None:
        return []
    run.set_tags(program_tags(source, folder, recipe))
    compile_run = compile_run_of(folder) if folder is not None else ""
    versions = (_versions_of_compile(compile_run) if compile_run
                else [] if source else _baseline_versions(recipe))
    link_versions(run.run_id, versions)
    return versions


def _versions_of_compile(run_id: str) -> list[tuple[str, int]]:
    from mlflow import MlflowClient

    try:
        linked = json.loads(MlflowClient().get_run(run_id).data.tags.get(LINKED_PROMPTS, "[]"))
        return [(entry["name"], int(entry["version"])) for entry in linked]
    except Exception as exc:
        warn_failed(f"read the prompt versions of compile run {run_id}", exc)
        return []


def _baseline_versions(recipe: str, prefix: str = "sage.") -> list[tuple[str, int]]:
    """The newest baseline version of each prompt registered for `recipe`'s uncompiled program."""
    import mlflow.genai
    from mlflow import MlflowClient

    try:
        chosen = {}
        for prompt in mlflow.genai.search_prompts(filter_string=f"name LIKE '{prefix}%'"):
            for version in MlflowClient().search_prompt_versions(prompt.name):
                tags = version.tags or {}
                if tags.get(BASELINE_TAG) == "true" and tags.get("recipe") == recipe:
                    chosen[prompt.name] = max(chosen.get(prompt.name, 0), int(version.version))
        return sorted(chosen.items())
    except Exception as exc:
        warn_failed("find the baseline prompt versions", exc)
        return []
