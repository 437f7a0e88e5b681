"""Structured output: the `json` and `json-schema` adapters, and the schema each call sends as `response_format`.

- `json`: DSPy's JSONAdapter, with `response_format: {"type": "json_object"}` on every call. DSPy's own adapter
  sends one only to models its metadata says accept it, which leaves out every `openai/<served model>`,
  `hosted_vllm/` and `ollama_chat/` model: the servers a small model runs on.
- `json-schema`: the same, with `{"type": "json_schema", ...}` built from the signature. For a ReAct step sent
  to a server of one's own (`hosted_vllm/`, `ollama_chat/`, `openai/` with an `--api-base` other than OpenAI's)
  the schema has one branch per tool (a top-level `anyOf`): the tool's name as the only allowed
  `next_tool_name`, and its arguments as `next_tool_args`, every argument required and a string argument
  non-empty; a grammar-decoding server (llama.cpp, vLLM, Ollama) then cannot write an unknown tool, a search
  without a query, or arguments that belong to another tool. Hosted providers' strict structured outputs
  (OpenAI's) refuse a top-level `anyOf` and length keywords, so they get one object: the tool names as an
  enum, and the arguments as an `anyOf` of each tool's, every argument required, strict. Other signatures get
  DSPy's structured-output schema of their output fields.

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
from sage_dspy.lm.endpoint import serves_openai_elsewhere

STEP_FIELDS = ("next_thought", "next_tool_name", "next_tool_args")
SERVER_PREFIXES = ("hosted_vllm/", "ollama_chat/", "ollama/", "lm_studio/")  # OpenAI-compatible servers of one's own
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
        lm_kwargs["response_format"] = self.response_format(signature, own_server(lm))

    def response_format(self, signature, to_own_server: bool = True) -> dict:
        return dict(JSON_OBJECT)


def own_server(lm) -> bool:
    """The LM's requests go to a server of one's own (grammar decoding takes any JSON schema), not to a hosted
    provider's strict structured outputs."""
    model = str(getattr(lm, "model", ""))
    return model.startswith(SERVER_PREFIXES) or serves_openai_elsewhere(model, getattr(lm, "kwargs", {}) or {})


class JSONSchemaAdapter(JSONAdapter):
    """JSONAdapter sending a JSON schema per call: per tool for a ReAct step, of the output fields otherwise."""

    def response_format(self, signature, to_own_server: bool = True) -> dict:
        if set(STEP_FIELDS) <= set(signature.output_fields):
            tools = _tools.get()
            return step_format(tools, tied=to_own_server) if tools else dict(JSON_OBJECT)
        return fields_format(signature, strict=not to_own_server)


def step_format(tools: dict[str, dict], tied: bool = True) -> dict:
    """`response_format` for a ReAct step: one branch per tool, its name and its arguments tied together
    (`tied`), or one strict object whose arguments are any tool's."""
    arguments = {name: _arguments(args, non_empty=tied) for name, args in tools.items()}
    if not tied:
        return _named("react_step", _step_object(list(arguments), {"anyOf": list(arguments.values())}), strict=True)
    return _named("react_step", {"anyOf": [_step_object([name], args) for name, args in arguments.items()]})


def _arguments(args: dict, non_empty: bool) -> dict:
    # OpenAI's strict mode refuses length keywords: hosted steps leave a string argument unbounded
    properties = {arg: _non_empty(schema) if non_empty else dict(schema) for arg, schema in args.items()}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _step_object(names: list[str], arguments: dict) -> dict:
    return {"type": "object",
            "properties": {"next_thought": {"type": "string"}, "next_tool_name": {"type": "string", "enum": names},
                           "next_tool_args": arguments},
            "required": list(STEP_FIELDS), "additionalProperties": False}


def _non_empty(schema: dict) -> dict:
    """A string argument must say something: an empty query searches for nothing."""
    schema = dict(schema)
    if schema.get("type") == "string":
        schema.setdefault("minLength", 1)
    return schema


_field_formats: dict = {}


def fields_format(signature, strict: bool = False) -> dict:
    """DSPy's structured-output schema of the signature's output fields (what JSONAdapter sends to models its
    metadata knows; already in strict mode's shape), built once per signature and `strict`; an open mapping
    (dict) field leaves plain JSON mode."""
    key = _signature_key(signature)
    key = (key, strict) if key is not None else None
    cached = _field_formats.get(key) if key is not None else None
    if cached is not None:
        return cached
    try:
        model = _get_structured_outputs_response_format(signature, use_native_function_calling=False)
        built = _named(signature.__name__ or "outputs", model.model_json_schema(), strict=strict)
    except (ValueError, pydantic.PydanticInvalidForJsonSchema, pydantic.PydanticSchemaGenerationError):
        built = dict(JSON_OBJECT)
    return _bounded_put(_field_formats, key, built) if key is not None else built


def _named(name: str, schema: dict, strict: bool = False) -> dict:
    # Servers that decode by grammar enforce the schema whatever `strict` says; OpenAI enforces it only when set.
    safe = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)[:64] or "outputs"
    return {"type": "json_schema", "json_schema": {"name": safe, "schema": schema, "strict": strict}}

