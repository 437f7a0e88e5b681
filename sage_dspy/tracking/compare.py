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


def runs_table(run_ids: list[str], last: int = 5) -> tuple[list[str], list[dict]]:
    """Runs side by side: the chosen runs (or the newest `last`, nested evaluate runs included), their key
    params and every metric (latest value)."""
    client = MlflowClient()
    if run_ids:
        try:
            runs = [client.get_run(run_id) for run_id in run_ids]
        except Exception:
            raise NotFoundError("a run id was not found; list runs with `sage runs compare` or `sage ui`") from None
    else:
        experiment = mlflow.get_experiment_by_name("sage-dspy")
        if experiment is None:
            return [], []
        runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                  max_results=last)
    keys = sorted({key for run in runs for key in run.data.metrics})
    rows = []
    for run in runs:
        params, tags = run.data.params, run.data.tags
        rows.append({"run": run.info.run_id[:8], "name": run.info.run_name or "",
                     "command": tags.get("command", ""), "recipe": params.get("recipe", tags.get("recipe", "")),
                     "optimizer": params.get("optimizer", ""), "corpus": tags.get("corpus", params.get("corpus", "")),
                     "parent": tags.get("mlflow.parentRunId", "")[:8], "comparable": tags.get("val.comparable", ""),
                     **{key: run.data.metrics.get(key) for key in keys}})
    return keys, rows
