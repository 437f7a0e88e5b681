"""Replies for signatures the offline LM has no role for (an optimizer's own prompts, a user's module).

Every output field gets a value valid for its declared type, derived from the prompt so the reply is
deterministic and on topic; a text field restates the task's instructions.
"""

import re

from sage_dspy.offline.prompt import Prompt


def fill_any(prompt: Prompt) -> dict:
    return {name: _value_for(name, kind, prompt) for name, kind in prompt.output_types.items()}


def _value_for(name: str, declared: str, prompt: Prompt):
    kind = declared.lower()
    if kind.startswith("literal["):
        options = re.findall(r"'([^']*)'", declared)
        return options[0] if options else ""
    if kind == "bool":
        return True
    if kind == "int":
        return 0
    if kind == "float":
        return 0.0
    if kind.startswith(("list", "tuple")):
        return []
    if kind.startswith("dict"):
        return {}
    first_sentence = re.split(r"(?<=[.!?])\s", prompt.instructions, maxsplit=1)[0]
    return first_sentence or f"{name.replace('_', ' ')}: no content."
