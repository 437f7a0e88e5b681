"""dspy.ChatAdapter with its per-call pydantic work cached: the same prompt bytes and parsed values, less CPU.

DSPy's ChatAdapter rebuilds, at every LM call, everything that depends only on the signature and the field
types: the system message (a JSON schema per typed output field, each through a new pydantic TypeAdapter),
a TypeAdapter per input value, and a TypeAdapter per typed output field when parsing. On the agents' step
signature that is 0.46 ms of CPU to format a call and 0.06 ms to parse its reply (0.03 and 0.015 ms here),
next to about 2 ms for the whole bare HTTP call. This adapter keeps DSPy's text and values and caches that work:

- the system message, per signature content (instructions, and each field's name, type, description and
  metadata), so a changed instruction or field gives a new message;
- str and int input values are written as DSPy writes them (the value, `str(n)`) without a TypeAdapter;
- output values are parsed as `dspy.adapters.utils.parse_value` parses them, with the TypeAdapter cached per
  annotation; enums, Literals, unions and DSPy types go to DSPy's own function.

Parse failures raise what DSPy raises (AdapterParseError from `parse`), so the JSONAdapter fallback is DSPy's,
unchanged. When that fallback fails too, the call is asked again as a fresh rollout (a new `rollout_id`, so
DSPy's cache cannot return the same reply) up to the LM's `parse_retries` times (`inflight.PARSE_RETRIES`
for an LM that has no such setting); every failed try is counted for the role (`usage.count_parse_failure`).
Small self-hosted models often answer outside the format once in a while: one such reply must not cost a seed.
`RoleLMs.use` installs it, or the role's `--adapter` (`ADAPTERS`; lm.structured), where no adapter is configured
(lm.choice).
"""

import ast
import enum
import inspect
import types
from typing import Any, Literal, Union, get_origin

import dspy
import json_repair
from dspy.adapters.chat_adapter import field_header_pattern
from dspy.adapters.types.base_type import Type as DspyType
from dspy.adapters.utils import apply_output_field_defaults, format_field_value as dspy_format_field_value
from dspy.adapters.utils import parse_value as dspy_parse_value
from dspy.utils.exceptions import AdapterParseError
from dspy.utils.callback import with_callbacks
from pydantic import TypeAdapter

from sage_dspy.lm.inflight import PARSE_RETRIES
from sage_dspy.lm.usage import count_parse_failure

CACHE_LIMIT = 512  # entries per cache; optimizers make a new signature per candidate instruction


def _bounded_put(cache: dict, key, value):
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


_type_adapters: dict = {}


def type_adapter(annotation) -> TypeAdapter | None:
    """pydantic's TypeAdapter for `annotation`, built once; None where the annotation cannot be a key. The key
    has the annotation's repr too: `Literal[1, 2] == Literal[2, 1]`, yet their error messages differ."""
    try:
        key = (annotation, repr(annotation))
        cached = _type_adapters.get(key)
    except TypeError:  # unhashable, e.g. Annotated with a dict in its metadata
        return None
    return cached if cached is not None else _bounded_put(_type_adapters, key, TypeAdapter(annotation))


def _delegated(annotation) -> bool:
    """Annotations whose parsing DSPy special-cases (cheaply, or rarely): its own function parses them."""
    origin = get_origin(annotation)
    if isinstance(annotation, enum.EnumMeta) or origin is Literal or origin in (Union, types.UnionType):
        return True
    try:
        return isinstance(annotation, type) and issubclass(annotation, DspyType)
    except TypeError:
        return True


def parse_value(value, annotation):
    """`dspy.adapters.utils.parse_value(value, annotation)`: the same value, or the same exception."""
    if annotation is str:
        return str(value)
    adapter = None if _delegated(annotation) or not isinstance(value, str) else type_adapter(annotation)
    if adapter is None:
        return dspy_parse_value(value, annotation)
    candidate = json_repair.loads(value)  # returns "" on failure
    if candidate == "" and value != "":
        try:
            candidate = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            candidate = value
    return adapter.validate_python(candidate)


def format_field_value(field_info, value) -> str:
    """`dspy.adapters.utils.format_field_value`: a str is itself and an int its digits (what DSPy's pydantic
    round trip gives); anything else goes through DSPy."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return dspy_format_field_value(field_info=field_info, value=value)


def _frozen(extra) -> tuple:
    return tuple(sorted((extra or {}).items()))


def _signature_key(signature) -> tuple | None:
    """Everything ChatAdapter's system message reads from a signature, or None if some part is unhashable."""
    try:
        fields = tuple((name, info.annotation, repr(info.annotation), _frozen(info.json_schema_extra),
                        tuple(info.metadata)) for name, info in signature.model_fields.items())
        key = (signature.__doc__, fields)
        hash(key)
    except TypeError:
        return None
    return key


_system_messages: dict = {}


class ParseRetries:
    """Mixed in before a DSPy adapter: a reply it cannot parse (after DSPy's own JSON fallback, where the adapter
    has one) is asked again as a fresh rollout, up to the LM's `parse_retries` times, each failure counted. The
    error that leaves holds every failed reply of those tries, fallbacks included (`FAILED_REPLIES`, bounded):
    DSPy's own error names only the last one."""

    def __init_subclass__(cls, **kwargs) -> None:
        # DSPy's Adapter.__init_subclass__ wraps `format` and `parse` with its callbacks for every subclass, around
        # what the class inherits: already wrapped once for each adapter above it, so callbacks (and MLflow's
        # spans) fired once per level. Wrap the plain methods once, as dspy.ChatAdapter's own are.
        super().__init_subclass__(**kwargs)
        cls.format = with_callbacks(inspect.unwrap(cls.format))
        cls.parse = with_callbacks(inspect.unwrap(cls.parse))

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        replies = []
        for retry in range(_parse_retries(lm) + 1):
            try:
                return super().__call__(_fresh_rollout(lm, retry), dict(lm_kwargs), signature, demos, inputs)
            except AdapterParseError as error:
                _failed_try(lm, error, replies, last=retry == _parse_retries(lm))

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        replies = []
        for retry in range(_parse_retries(lm) + 1):
            try:
                return await super().acall(_fresh_rollout(lm, retry), dict(lm_kwargs), signature, demos, inputs)
            except AdapterParseError as error:
                _failed_try(lm, error, replies, last=retry == _parse_retries(lm))


FAILED_REPLIES = "sage_failed_replies"  # attribute of the AdapterParseError that leaves ParseRetries
FAILED_REPLIES_KEPT = 8  # the last replies kept: 2 retries of a chat call and its JSON fallback make 6


def _failed_try(lm, error: AdapterParseError, replies: list, *, last: bool) -> None:
    """Count the failure and note its replies (the chat reply DSPy's JSON fallback replaced is the context of
    the fallback's error); on the last try, raise `error` holding them all."""
    count_parse_failure(lm.model)
    chain, cause = [], error
    while isinstance(cause, AdapterParseError):
        chain.append(str(cause.lm_response or ""))
        cause = cause.__context__
    replies.extend(reversed(chain))
    if last:
        setattr(error, FAILED_REPLIES, replies[-FAILED_REPLIES_KEPT:])
        raise error


class ChatAdapter(ParseRetries, dspy.ChatAdapter):
    """dspy.ChatAdapter, with the work that depends only on the signature and field types done once."""

    def format_system_message(self, signature) -> str:
        key = _signature_key(signature)
        if key is None:
            return super().format_system_message(signature)
        key = (type(self), key)
        message = _system_messages.get(key)
        if message is None:
            message = _bounded_put(_system_messages, key, super().format_system_message(signature))
        return message

    def format_user_message_content(self, signature, inputs: dict[str, Any], prefix: str = "", suffix: str = "",
                                    main_request: bool = False) -> str:
        # dspy.ChatAdapter.format_user_message_content, with the cheaper format_field_value.
        messages = [prefix]
        for name, field_info in signature.input_fields.items():
            if name in inputs:
                messages.append(f"[[ ## {name} ## ]]\n{format_field_value(field_info, inputs.get(name))}")
        if main_request:
            output_requirements = self.user_message_output_requirements(signature)
            if output_requirements is not None:
                messages.append(output_requirements)
        messages.append(suffix)
        return "\n\n".join(messages).strip()

    def parse(self, signature, completion: str) -> dict[str, Any]:
        # dspy.ChatAdapter.parse, with the cached parse_value.
        sections = [(None, [])]
        for line in completion.splitlines():
            match = field_header_pattern.match(line.strip())
            if match:
                remaining_content = line[match.end():].strip()
                sections.append((match.group(1), [remaining_content] if remaining_content else []))
            else:
                sections[-1][1].append(line)
        sections = [(name, "\n".join(lines).strip()) for name, lines in sections]

        fields = {}
        output_fields = signature.output_fields
        for name, text in sections:
            if name not in fields and name in output_fields:
                try:
                    fields[name] = parse_value(text, output_fields[name].annotation)
                except ValueError as e:
                    raise AdapterParseError(
                        adapter_name="ChatAdapter", signature=signature, lm_response=completion,
                        message=f"Failed to parse field {name} with value {text} from the LM response. "
                                f"Error message: {e}")
        fields = apply_output_field_defaults(signature, fields)
        if fields.keys() != output_fields.keys():
            raise AdapterParseError(adapter_name="ChatAdapter", signature=signature, lm_response=completion,
                                    parsed_result=fields)
        return fields


def _parse_retries(lm) -> int:
    return max(int(getattr(lm, "parse_retries", PARSE_RETRIES)), 0)


def _fresh_rollout(lm, retry: int):
    """`lm` for the first try; for retry n, a copy whose rollout_id differs from every other call's, so the
    request is a new cache entry (and, at temperature > 0, a new sample)."""
    if retry == 0 or not hasattr(lm, "copy"):
        return lm
    return lm.copy(rollout_id=f"{lm.kwargs.get('rollout_id', '')}/parse-retry-{retry}")


ADAPTERS = ("chat", "json", "json-schema")  # --adapter: how each call asks for and reads its fields (lm.choice)
DEFAULT_ADAPTER = "chat"
