"""Structured output: the `json` and `json-schema` adapters, and the schema each call sends as `response_format`.

- `json`: DSPy's JSONAdapter, with `response_format: {"type": "json_object"}` on every call. DSPy's own adapter
  sends one only to models its metadata says accept it, which leaves out every `openai/<served model>`,
  `hosted_vllm/` and `ollama_chat/` model: the servers a small model runs on.
- `json-schema`: the same, with `{"type": "json_schema", ...}` built from the signature. For a ReAct step the
  schema has one branch per tool (`anyOf`): the tool's name as the only allowed `next_tool_name`, and its
  arguments as `next_tool_args`, every argument required and a string argument non-empty; a grammar-decoding
  server (llama.cpp, vLLM, Ollama) then cannot write an unknown tool, a search without a query, or arguments
  that belong to another tool. Other signatures get DSPy's structured-output schema of their output fields.

The tools come from the ReAct running the step (`lm.react.ReAct` sets `current_tools`), not from the
signature, which names the tools only in its instructions. A step outside our ReAct gets plain JSON mode.
Both adapters keep the project's parse retries (`lm.adapter.ParseRetries`).
"""

import contextlib
from contextvars import ContextVar

import dspy
import pydantic
from dspy.adapters.json_adapter import _get_structured_outputs_response_format

from sage_dspy.lm.adapter import ParseRetries, _bounded_put, _signature_key

STEP_FIELDS = ("next_thought", "next_tool_name", "next_tool_args")
JSON_OBJECT = {"type": "json_object"}

# {tool name: its arguments' JSON schema (dspy.Tool.args)} of the ReAct whose step is being asked for
_tools: ContextVar[dict[str, dict] | None] = ContextVar("sage_react_tools", default=None)


@contextlib.contextmanager
def current_tools(tools: dict[str, dict]):
    token = _tools.set(tools)
    try:
        yield
    finally:
        _tools.reset(token)


class JSONAdapter(ParseRetries, dspy.JSONAdapter):
    """dspy.JSONAdapter asking every server for JSON (`response_format` json_object), with parse retries."""

    def __init__(self):
        # No native function calling: the agents' steps are the signature's fields, as under the chat adapter.
        super().__init__(use_native_function_calling=False)

    def _prepare_response_format(self, lm, lm_kwargs, signature):
        lm_kwargs["response_format"] = self.response_format(signature)

    def response_format(self, signature) -> dict:
        return dict(JSON_OBJECT)


class JSONSchemaAdapter(JSONAdapter):
    """JSONAdapter sending a JSON schema per call: per tool for a ReAct step, of the output fields otherwise."""

    def response_format(self, signature) -> dict:
        if set(STEP_FIELDS) <= set(signature.output_fields):
            tools = _tools.get()
            return step_format(tools) if tools else dict(JSON_OBJECT)
        return fields_format(signature)


def step_format(tools: dict[str, dict]) -> dict:
    """`response_format` for a ReAct step: one branch per tool, its name and its arguments tied together."""
    branches = []
    for name, args in tools.items():
        properties = {arg: _non_empty(schema) for arg, schema in args.items()}
        branches.append({
            "type": "object",
            "properties": {"next_thought": {"type": "string"},
                           "next_tool_name": {"type": "string", "enum": [name]},
                           "next_tool_args": {"type": "object", "properties": properties,
                                              "required": list(properties), "additionalProperties": False}},
            "required": list(STEP_FIELDS), "additionalProperties": False})
    return _named("react_step", {"anyOf": branches})


def _non_empty(schema: dict) -> dict:
    """A string argument must say something: an empty query searches for nothing."""
    schema = dict(schema)
    if schema.get("type") == "string":
        schema.setdefault("minLength", 1)
    return schema


_field_formats: dict = {}


def fields_format(signature) -> dict:
    """DSPy's structured-output schema of the signature's output fields (what JSONAdapter sends to models its
    metadata knows), built once per signature; an open mapping (dict) field leaves plain JSON mode."""
    key = _signature_key(signature)
    cached = _field_formats.get(key) if key is not None else None
    if cached is not None:
        return cached
    try:
        model = _get_structured_outputs_response_format(signature, use_native_function_calling=False)
        built = _named(signature.__name__ or "outputs", model.model_json_schema())
    except (ValueError, pydantic.PydanticInvalidForJsonSchema, pydantic.PydanticSchemaGenerationError):
        built = dict(JSON_OBJECT)
    return _bounded_put(_field_formats, key, built) if key is not None else built


def _named(name: str, schema: dict) -> dict:
    # strict would make OpenAI refuse the tools' anyOf at the top; servers that decode by grammar enforce the
    # schema whatever `strict` says.
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)[:64] or "outputs"
    return {"type": "json_schema", "json_schema": {"name": safe, "schema": schema, "strict": False}}

