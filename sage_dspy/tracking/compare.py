"""Comparing prompt versions and runs stored in MLflow: the third thing users come for."""

import difflib
import time

import mlflow
from mlflow import MlflowClient

from sage_dspy.errors import SageError


class NotFoundError(SageError, LookupError):
    """A prompt name, version or run that the store does not hold; the message says how to list them."""


def prompt_versions(prefix: str = "sage.") -> list[dict]:
    """Every registered prompt version under `prefix`, with the run and scores that produced it."""
    import mlflow.genai

    rows = []
    for prompt in mlflow.genai.search_prompts(filter_string=f"name LIKE '{prefix}%'"):
        for version in MlflowClient().search_prompt_versions(prompt.name):
            tags = dict(version.tags or {})
            rows.append({"name": prompt.name, "version": int(version.version), "run_id": tags.get("run_id", ""),
                         "optimizer": tags.get("optimizer", ""), "changed": tags.get("changed", ""),
                         "date": _date(version.creation_timestamp),
                         "val.before": tags.get("val.before", ""), "val.after": tags.get("val.after", ""),
                         "settings": tags.get("val.settings", ""), "comparable": tags.get("val.comparable", ""),
                         "message": version.commit_message or ""})
    return sorted(rows, key=lambda row: (row["name"], row["version"]))


def _date(milliseconds: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(milliseconds / 1000)) if milliseconds else ""


def _template(name: str, version: int) -> str:
    import mlflow.genai

    try:
        return mlflow.genai.load_prompt(f"prompts:/{name}/{version}").template
    except Exception:
        raise NotFoundError(f"no prompt {name!r} version {version}; list the versions with `sage prompts list`")\
            from None


def diff_prompt(name: str, old: int, new: int) -> str:
    """A unified diff of two versions' instructions and demos."""
    lines = difflib.unified_diff(_template(name, old).splitlines(), _template(name, new).splitlines(),
                                 fromfile=f"{name} v{old}", tofile=f"{name} v{new}", lineterm="")
    return "\n".join(lines) or f"{name}: versions {old} and {new} are identical"


def _experiment_runs(max_results: int = 1000) -> list:
    experiment = mlflow.get_experiment_by_name("sage-dspy")
    if experiment is None:
        return []
    return MlflowClient().search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                      max_results=max_results)


def find_runs(run_ids: list[str]) -> list:
    """The runs named by full ids or by the 8-character prefixes `runs list` and `runs compare` print; an
    evaluate parent brings its children (one per recipe or program) right after it."""
    stored = _experiment_runs(5000)
    runs = []
    for wanted in run_ids:
        found = [run for run in stored if run.info.run_id.startswith(wanted.lower())]
        if len(found) != 1:
            problem = "matches no run" if not found else f"matches {len(found)} runs; give more characters"
            raise NotFoundError(f"run id {wanted!r} {problem}; list runs with `sage runs list`")
        runs.append(found[0])
        runs += sorted((run for run in stored if run.data.tags.get("mlflow.parentRunId") == found[0].info.run_id),
                       key=lambda run: run.info.start_time)
    return runs


def _program(run) -> str:
    tags = run.data.tags
    if tags.get("command") == "compile":
        return f"{tags.get('optimizer', '')} compile"
    if tags.get("command") == "evaluate" and "mlflow.parentRunId" not in tags:
        return " vs ".join(filter(None, (tags.get("programs") or tags.get("recipes") or "").split(",")))
    return tags.get("program.label") or tags.get("program") or ""


def run_row(run) -> dict:
    params, tags = run.data.params, run.data.tags
    return {"run": run.info.run_id[:8], "name": run.info.run_name or "", "command": tags.get("command", ""),
            "recipe": params.get("recipe", tags.get("recipe", "")), "program": _program(run),
            "optimizer": params.get("optimizer", ""), "corpus": tags.get("corpus", params.get("corpus", "")),
            "parent": tags.get("mlflow.parentRunId", "")[:8], "comparable": tags.get("val.comparable", ""),
            "started": _date(run.info.start_time), "status": run.info.status}


def runs_table(run_ids: list[str], last: int = 5) -> tuple[list[str], list[dict]]:
    """Runs side by side: the chosen runs (full ids or 8-character prefixes; an evaluate parent with its
    children) or the newest `last`, nested evaluate runs included; their key params and every metric."""
    runs = find_runs(run_ids) if run_ids else _experiment_runs(last)
    keys = sorted({key for run in runs for key in run.data.metrics})
    return keys, [{**run_row(run), **{key: run.data.metrics.get(key) for key in keys}} for run in runs]


def runs_list(last: int = 20) -> list[dict]:
    """The newest runs, one row each: what ran (program), where, and what it kept and accepted."""
    rows = []
    for run in _experiment_runs(last):
        metrics = run.data.metrics
        rows.append({**run_row(run), "seeds": metrics.get("all.seeds"), "kept": metrics.get("all.kept"),
                     "accepted %": metrics.get("all.accepted_pct"), "val.after": metrics.get("val.after")})
    return rows
