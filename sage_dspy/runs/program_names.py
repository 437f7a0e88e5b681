"""What a compiled program is called where runs are listed: a short label for tables and run names, and a
slug for folder names, both from the source as the user typed it."""

import re
from pathlib import Path

BASELINE = "baseline"  # in --programs: the recipe's own, uncompiled prompts


def program_label(source: str) -> str:
    """"baseline", a compile folder's name, "generator.propose.react@v2" for
    prompts:/sage.generator.propose.react/2, "run 1a2b3c4d" for runs:/1a2b3c4d.../program, the model id."""
    if source.startswith("prompts:/"):
        reference = source.removeprefix("prompts:/")
        name, _, version = reference.rpartition("/")
        if name:
            return f"{name.removeprefix('sage.')}@v{version}"
        name, _, alias = reference.partition("@")
        return f"{name.removeprefix('sage.')}@{alias}"
    if source.startswith("runs:/"):
        return f"run {source.removeprefix('runs:/')[:8]}"
    if source.startswith("models:/"):
        return source.removeprefix("models:/")
    return Path(source.rstrip("/")).name or source


def slug(label: str) -> str:
    """A label (program_label's, or a whole source where two labels would be the same) as a folder-name or
    run-name part: [A-Za-z0-9_.@] runs joined by dashes, at most 48 characters."""
    return re.sub(r"[^A-Za-z0-9_.@]+", "-", label).strip("-")[:48] or "program"
