"""The prompt registry: each predictor's instructions and demos, rendered as text, as a new prompt version
tagged with the run (and optimizer) that made it, only when the text changed; linked to that run either way."""

from __future__ import annotations

import re
from typing import Any

from sage_dspy.tracking.store import warn_failed
from sage_dspy.tracking.runs import clean_key
from sage_dspy.tracking.secrets import scrub_secrets


def prompt_name(prefix: str, predictor_name: str) -> str:
    """Registry names allow [A-Za-z0-9_.-] only: "generator.propose" -> "sage.generator.propose",
    "steps[0].predict" -> "sage.steps.0.predict", "tools['a b']" -> "sage.tools.a_b"."""
    raw = re.sub(r"['\"\]]", "", f"{prefix}.{predictor_name}".replace("[", "."))
    return re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]", "_", raw))


def render_prompt(predictor: Any) -> str:
    """The signature's instructions, then each demo as `field: value` lines in signature order."""
    signature, demos = predictor.signature, predictor.demos
    fields = [*signature.input_fields, *signature.output_fields]
    lines = [signature.instructions.strip(), *(["", f"## Demos ({len(demos)})"] if demos else [])]
    for number, demo in enumerate(demos, 1):
        data = dict(demo.items())  # dspy.Example.items() hides internal dspy_* keys
        keys = [f for f in fields if f in data] + [k for k in data if k not in fields and k != "augmented"]
        lines += ["", f"### Demo {number}", *(f"{key}: {data[key]}" for key in keys)]
    return scrub_secrets("\n".join(lines))


DEMOS_HEADING = "\n\n## Demos ("


def what_changed(old: str | None, new: str) -> str:
    """"first version", "instructions", "demos", "instructions, demos" or "" (the same text)."""
    if old is None:
        return "first version"
    (old_text, _, old_demos), (new_text, _, new_demos) = old.partition(DEMOS_HEADING), new.partition(DEMOS_HEADING)
    return ", ".join(part for part, differs in (("instructions", old_text != new_text),
                                                ("demos", old_demos != new_demos)) if differs)


def _versions(client, name: str) -> list:
    """Every version of prompt `name`, oldest first ([] when there is none yet)."""
    if client.get_prompt(name) is None:
        return []
    return sorted(client.search_prompt_versions(name, max_results=1000), key=lambda v: int(v.version))


def register_prompts(program: Any, *, prefix: str = "sage", run_id: str | None = None,
                     metrics: dict | None = None, tags: dict | None = None) -> dict[str, dict]:
    """Each named predictor's prompt under `prompt_name(prefix, predictor_name)`: a new registry version
    only where no version holds the same text (tagged with run_id, `tags` such as the optimizer, metrics and
    what changed from the newest version), and either way linked to the run (the run page's "Registered
    prompts"): a prompt the optimizer left as it was keeps the version that has its text.
    Returns {name: {"version", "changed"}} ("" when the prompt is unchanged); failures warn and are left out."""
    import mlflow.genai
    from mlflow import MlflowClient

    client = MlflowClient()
    extra = {"run_id": run_id, **(tags or {}), **(metrics or {})}
    versions: dict[str, dict] = {}
    for predictor_name, predictor in program.named_predictors():
        name, template = prompt_name(prefix, predictor_name), render_prompt(predictor)
        try:
            versions_so_far = _versions(client, name)
            same = [v for v in versions_so_far if v.template == template]
            latest = same[-1] if same else versions_so_far[-1] if versions_so_far else None
            changed = "" if same else what_changed(latest.template if latest else None, template)
            if changed:
                what = "uncompiled baseline" if (tags or {}).get(BASELINE_TAG) else changed
                message = f"sage-dspy: {what}; {len(predictor.demos)} demos" + (f", run {run_id}" if run_id else "")
                labels = {clean_key(k): str(v) for k, v in {**extra, "changed": changed}.items() if v is not None}
                # the tags go on the version only: passed to register_prompt they would also be written to the
                # prompt, whose page header would then show the newest version's tags above every version
                latest = mlflow.genai.register_prompt(name=name, template=template, commit_message=message)
                for key, value in labels.items():
                    client.set_prompt_version_tag(name, latest.version, key, value)
                latest = client.get_prompt_version(name, latest.version)
            versions[name] = {"version": int(latest.version), "changed": changed}
        except Exception as exc:
            warn_failed(f"register prompt {name!r}", exc)
            continue
        if run_id:
            _link(client, run_id, latest)
    return versions


BASELINE_TAG = "baseline"  # "true" on the version holding a recipe's uncompiled prompt


def register_baseline(student: Any, *, recipe: str, prefix: str = "sage") -> dict[str, dict]:
    """The uncompiled prompts, registered where no version holds their text yet (in a fresh store: version 1 of
    every prompt) and tagged as the baseline, so every optimizer's version diffs against them. Linked to no run:
    a version's runs are the runs that ran it."""
    return register_prompts(student, prefix=prefix, tags={BASELINE_TAG: "true", "recipe": recipe,
                                                          "optimizer": "none (uncompiled)"})


def link_versions(run_id: str, versions: list[tuple[str, int]]) -> None:
    """Link each (prompt name, version) to the run (MLflow's prompt-to-run linking); failures warn."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for name, number in versions:
        try:
            _link(client, run_id, client.get_prompt_version(name, number))
        except Exception as exc:
            warn_failed(f"link prompt {name!r} version {number} to run {run_id}", exc)


RUN_IDS_TAG = "mlflow.prompt.run_ids"  # the version tag MLflow's Prompts page lists a version's runs from


def _link(client, run_id: str, version) -> None:
    """MLflow's prompt-to-run link (the run page's "Registered prompts"), and the run in the version's
    `mlflow.prompt.run_ids`, which the Prompts page reads to list the runs of a version (3.17's link sets only
    the first)."""
    try:
        client.link_prompt_version_to_run(run_id, version)
        current = client.get_prompt_version(version.name, version.version)
        listed = [run for run in ((current.tags or {}).get(RUN_IDS_TAG) or "").split(",") if run]
        if run_id not in listed:
            client.set_prompt_version_tag(version.name, version.version, RUN_IDS_TAG, ",".join([*listed, run_id]))
    except Exception as exc:
        warn_failed(f"link prompt {version.name!r} version {version.version} to run {run_id}", exc)
