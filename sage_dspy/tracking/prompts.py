"""The prompt registry: each predictor's instructions and demos, rendered as text, as a new prompt version
tagged with the run that made it."""

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


def register_prompts(program: Any, *, prefix: str = "sage", run_id: str | None = None,
                     metrics: dict | None = None) -> dict[str, int]:
    """One new registry version per named predictor, under `prompt_name(prefix, predictor_name)`,
    tagged with run_id and metrics. Returns {name: version}; failures warn and are left out."""
    import mlflow.genai

    tags = {clean_key(k): str(v) for k, v in {"run_id": run_id, **(metrics or {})}.items() if v is not None}
    versions: dict[str, int] = {}
    for predictor_name, predictor in program.named_predictors():
        name = prompt_name(prefix, predictor_name)
        message = f"sage-dspy: {len(predictor.demos)} demos" + (f", run {run_id}" if run_id else "")
        try:
            version = mlflow.genai.register_prompt(name=name, template=render_prompt(predictor),
                                                   commit_message=message, tags=tags)
            versions[name] = int(version.version)
        except Exception as exc:
            warn_failed(f"register prompt {name!r}", exc)
    return versions
