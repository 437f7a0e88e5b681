"""dspy.ReAct with a cheaper trajectory formatter: the same agent and the same prompt bytes, less client CPU.

`ReAct._format_trajectory` builds a new `dspy.Signature` (a pydantic class) at every step and formats every
value through pydantic's TypeAdapter. The client-overhead benchmark measured that at about 3 ms of CPU per LM
call, more than the HTTP call itself. For the chat and JSON adapters and plain values (strings, and dicts or
lists of JSON data: our observations and tool arguments), the text is written here exactly as
`ChatAdapter.format_user_message_content` writes it; anything else goes through DSPy with the signature
cached per key tuple. Predictor names (`react`, `extract`) are unchanged, so saved programs load either way.
While it runs, its tools' argument schemas are what the json-schema adapter constrains each step to
(`lm.structured.current_tools`).

Tools given as plain callables are wrapped in `Tool`, a dspy.Tool whose argument check reuses one jsonschema
validator per argument schema and one pydantic wrapper per argument type, where dspy.Tool builds both at
every call (about 0.6 ms per search). Valid arguments parse to the same values; for invalid ones it calls
dspy.Tool's own check, which raises DSPy's error (the observation the agent reads then shows one more
traceback frame, this module's).
"""

import json
from functools import lru_cache
from typing import Any

import dspy
import pydantic
from jsonschema import SchemaError, validators

from sage_dspy.breaker import agent_run, pending_fault
from sage_dspy.lm.adapter import CACHE_LIMIT, ChatAdapter
from sage_dspy.lm.structured import JSONAdapter, JSONSchemaAdapter, current_tools

_PLAIN_ADAPTERS = (dspy.ChatAdapter, dspy.JSONAdapter, ChatAdapter, JSONAdapter, JSONSchemaAdapter)
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


@lru_cache(maxsize=CACHE_LIMIT)
def _validator(schema_json: str):
    """What `jsonschema.validate` builds for this schema at every call; None if the schema is invalid (then
    dspy.Tool's own check raises its SchemaError)."""
    schema = json.loads(schema_json)
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    return cls(schema)


@lru_cache(maxsize=CACHE_LIMIT)
def _wrapper(arg_type, type_repr: str) -> type[pydantic.BaseModel]:
    """dspy.Tool's per-call wrapper model; keyed by repr too, as `int | str == str | int`."""
    return pydantic.create_model("Wrapper", value=(arg_type, ...))


def _valid(schema: dict, value) -> bool:
    """`jsonschema.validate(value, schema)` would not raise; False where that is not known cheaply."""
    if "$schema" in schema:  # validator_for may warn about it at every call: leave that to DSPy
        return False
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except (TypeError, ValueError):  # not JSON (a default DSPy could not serialise): let DSPy decide
        return False
    return validator is not None and validator.is_valid(value)


class Tool(dspy.Tool):
    """dspy.Tool with its argument check built once per schema and type instead of at every call."""

    def _validate_and_parse_args(self, **kwargs):
        parsed = {}
        for name, value in kwargs.items():
            if name not in self.args:
                if not self.has_kwargs:
                    return super()._validate_and_parse_args(**kwargs)  # raises DSPy's ValueError
                continue
            instance = value.model_dump() if hasattr(value, "model_dump") else value
            type_str = self.args[name].get("type")
            if type_str is not None and type_str != "Any" and not _valid(self.args[name], instance):
                return super()._validate_and_parse_args(**kwargs)
        for name, value in kwargs.items():
            if name not in self.arg_types or self.arg_types[name] == Any:
                parsed[name] = value
                continue
            arg_type = self.arg_types[name]
            try:
                parsed[name] = _wrapper(arg_type, repr(arg_type)).model_validate({"value": value}).value
            except (TypeError, pydantic.ValidationError):  # unhashable type, or a value DSPy rejects too
                return super()._validate_and_parse_args(**kwargs)
        return parsed


class ReAct(dspy.ReAct):
    def __init__(self, signature, tools: list, max_iters: int = 20):
        tools = [tool if isinstance(tool, dspy.Tool) else Tool(tool) for tool in tools]
        super().__init__(signature, tools=tools, max_iters=max_iters)

    def _tool_schemas(self) -> dict[str, dict]:
        return {name: dict(tool.args or {}) for name, tool in self.tools.items()}

    def forward(self, **input_args):
        # a tool whose backend failed ends the agent (sage_dspy.breaker.agent_run); the json-schema adapter reads
        # the per-tool schema (lm.structured)
        with agent_run(), current_tools(self._tool_schemas()):
            return super().forward(**input_args)

    async def aforward(self, **input_args):
        with agent_run(), current_tools(self._tool_schemas()):
            return await super().aforward(**input_args)

    def _call_with_potential_trajectory_truncation(self, module, trajectory, **input_args):
        fault = pending_fault()
        if fault is not None:  # the last tool call failed at the infrastructure: stop before paying for a call
            raise fault
        return super()._call_with_potential_trajectory_truncation(module, trajectory, **input_args)

    def _format_trajectory(self, trajectory: dict):
        adapter = dspy.settings.adapter or dspy.ChatAdapter()
        if type(adapter) in _PLAIN_ADAPTERS:
            texts = [_plain_text(value) for value in trajectory.values()]
            if None not in texts:
                sections = [f"[[ ## {key} ## ]]\n{text}" for key, text in zip(trajectory, texts)]
                return "\n\n".join(["", *sections, ""]).strip()
        return adapter.format_user_message_content(_trajectory_signature(tuple(trajectory)), trajectory)
