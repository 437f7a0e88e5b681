"""dspy.ReAct with a cheaper trajectory formatter: the same agent and the same prompt bytes, less client CPU.

`ReAct._format_trajectory` builds a new `dspy.Signature` (a pydantic class) at every step and formats every
value through pydantic's TypeAdapter. The client-overhead benchmark measured that at about 3 ms of CPU per LM
call, more than the HTTP call itself. For the chat and JSON adapters and plain values (strings, and dicts or
lists of JSON data: our observations and tool arguments), the text is written here exactly as
`ChatAdapter.format_user_message_content` writes it; anything else goes through DSPy with the signature
cached per key tuple. Predictor names (`react`, `extract`) are unchanged, so saved programs load either way.
"""

import json
from functools import lru_cache

import dspy

_PLAIN_ADAPTERS = (dspy.ChatAdapter, dspy.JSONAdapter)
_JSON_SCALARS = (str, int, float, bool, type(None))


@lru_cache(maxsize=256)
def _trajectory_signature(keys: tuple[str, ...]) -> type[dspy.Signature]:
    return dspy.Signature(f"{', '.join(keys)} -> x")


def _is_plain_json(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain_json(v) for v in value)
    return isinstance(value, _JSON_SCALARS)


def _plain_text(value) -> str | None:
    """The adapter's text for a str field holding `value`, or None where only DSPy knows it (e.g. a list,
    which it numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and _is_plain_json(value):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    return None


class ReAct(dspy.ReAct):
    def _format_trajectory(self, trajectory: dict):
        adapter = dspy.settings.adapter or dspy.ChatAdapter()
        if type(adapter) in _PLAIN_ADAPTERS:
            texts = [_plain_text(value) for value in trajectory.values()]
            if None not in texts:
                sections = [f"[[ ## {key} ## ]]\n{text}" for key, text in zip(trajectory, texts)]
                return "\n\n".join(["", *sections, ""]).strip()
        return adapter.format_user_message_content(_trajectory_signature(tuple(trajectory)), trajectory)
