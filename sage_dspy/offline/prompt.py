"""Read a DSPy adapter prompt back into fields, and write replies in the adapter's format.

The offline LM sees exactly what a hosted LM would see: a system message that lists the input and output
fields with their types and ends with the instructions, and a user message with one `[[ ## name ## ]]`
section per input. Demos arrive as earlier turns; the offline LM answers from the last user turn.
"""

import json
import re
from dataclasses import dataclass, field

from sage_dspy.search.passages import parse_passages, Passage

_FIELD_LINE = re.compile(r"^\d+\. `(\w+)` \((.*)\)(?::.*)?$")
_SECTION = re.compile(r"\[\[ ## (\w+) ## \]\]\n?")
_STEP_KEY = re.compile(r"(thought|tool_name|tool_args|observation)_(\d+)")


@dataclass
class Prompt:
    instructions: str
    inputs: dict[str, str]
    output_types: dict[str, str]
    json_reply: bool = False
    rollout: int = 0  # the request's sampling seed: distinct attempts read different rollouts

    def int_input(self, name: str, default: int) -> int:
        match = re.search(r"-?\d+", self.inputs.get(name, ""))
        return int(match.group()) if match else default


@dataclass(frozen=True)
class ToolStep:
    tool: str
    query: str
    observation: str
    hits: list[Passage] = field(default_factory=list)


def read_prompt(system: str, user: str, *, seed: int | None, json_mode: bool) -> Prompt:
    inputs_block, _, rest = system.partition("Your output fields are:")
    input_names = _field_types(inputs_block)
    output_types = _field_types(rest.split("All interactions will be structured")[0])
    _, _, instructions = system.partition("your objective is:")
    return Prompt(
        instructions=" ".join(instructions.split()),
        inputs=_sections(user, set(input_names)),
        output_types=output_types,
        json_reply=json_mode or "Outputs will be a JSON object" in system,
        rollout=seed or 0,
    )


def _field_types(block: str) -> dict[str, str]:
    fields = {}
    for line in block.splitlines():
        match = _FIELD_LINE.match(line.strip())
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


def _sections(user: str, names: set[str]) -> dict[str, str]:
    """Split on the markers of declared inputs only: a ReAct trajectory nests markers of its own."""
    user = re.split(r"\n\nRespond with ", user)[0]
    values, current, start = {}, None, 0
    for match in _SECTION.finditer(user):
        if match.group(1) not in names:
            continue
        if current:
            values[current] = user[start:match.start()].strip()
        current, start = match.group(1), match.end()
    if current:
        values[current] = user[start:].strip()
    return values


def read_trajectory(text: str) -> list[ToolStep]:
    """The tool calls of a ReAct trajectory as formatted into the prompt, in order."""
    parts: dict[int, dict[str, str]] = {}
    matches = list(_SECTION.finditer(text))
    for index, match in enumerate(matches):
        key = _STEP_KEY.fullmatch(match.group(1))
        if key:
            end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
            parts.setdefault(int(key.group(2)), {})[key.group(1)] = text[match.end():end].strip()
    steps = []
    for number in sorted(parts):
        step = parts[number]
        args = _json_or_empty(step.get("tool_args", "{}"))
        observation = step.get("observation", "")
        steps.append(ToolStep(step.get("tool_name", ""), str(args.get("query", "")), observation,
                              parse_passages(observation)))
    return steps


def _json_or_empty(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def write_reply(values: dict, output_types: dict[str, str], *, json_reply: bool) -> str:
    """Format values the way the adapter parses them; every declared output is present."""
    ordered = {name: values.get(name, _empty(kind)) for name, kind in output_types.items()}
    if json_reply:
        return json.dumps(ordered)
    sections = [f"[[ ## {name} ## ]]\n{_render(value)}" for name, value in ordered.items()]
    return "\n\n".join(sections + ["[[ ## completed ## ]]"])


def _render(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return json.dumps(value)


def _empty(declared: str):
    kind = declared.lower()
    if kind.startswith(("list", "tuple")):
        return []
    if kind.startswith("dict"):
        return {}
    if kind == "bool":
        return False
    if kind in ("int", "float"):
        return 0
    if kind.startswith("literal["):
        options = re.findall(r"'([^']*)'", declared)
        return options[0] if options else ""
    return ""
