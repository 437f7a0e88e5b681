"""The OpenAI chat-completions format, as the offline server reads and writes it: the prompt out of a request
body (system and last message, `seed`, `response_format`), the offline LM's reply and usage, a completion body
and an error body. The reply is exactly the in-process `OfflineEngine`'s, through the same functions
(`read_prompt`, `respond`, `write_reply`).

`response_format` is read as OpenAI, vLLM and llama.cpp's server read it: `text`, `json_object` (llama.cpp's
server also takes a `schema` beside it) or `json_schema` (`json_schema: {name, schema, strict}`). A malformed one
is the client's error (`BadRequest`, a 400 with the reason), as on those servers. A reply under a schema must
conform to it, as grammar decoding makes it: the offline LM cannot sample again, so a reply that does not is
the server's failure (`NotConforming`, a 500 naming the first violation), never a silent pass.
"""

import json
import time

from jsonschema import SchemaError, validators

from sage_dspy.offline.engine import MODEL_NAME, respond
from sage_dspy.offline.prompt import read_prompt, write_reply


def _text(content) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and part.get("type") in ("text", "input_text", None))
    return ""


def read_messages(messages: list) -> tuple[str, str]:
    """(system, last message), as the engine reads a lm15 Request (system apart, then the turns): demos in
    earlier turns are ignored."""
    messages = [m for m in messages if isinstance(m, dict)]
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    turns = [m for m in messages if m.get("role") not in ("system", "developer")]
    return system, _text(turns[-1].get("content")) if turns else ""


class BadRequest(ValueError):
    """A request body a real server answers with 400; the message says what is wrong with it."""


class NotConforming(RuntimeError):
    """The offline LM's reply does not conform to the schema the request gave."""


RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")


def response_format_of(body: dict) -> tuple[bool, dict | None]:
    """(a JSON reply is asked for, the JSON schema it must conform to or None)."""
    fmt = body.get("response_format")
    if fmt is None:
        return False, None
    if not isinstance(fmt, dict) or fmt.get("type") not in RESPONSE_FORMAT_TYPES:
        raise BadRequest(f"response_format must be an object whose type is one of {', '.join(RESPONSE_FORMAT_TYPES)}")
    if fmt["type"] == "text":
        return False, None
    if fmt["type"] == "json_object":
        return True, _checked_schema(fmt.get("schema"), "response_format.schema")
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise BadRequest("response_format json_schema needs json_schema: {name, schema}")
    return True, _checked_schema(spec.get("schema"), "response_format.json_schema.schema")


def _checked_schema(schema, where: str) -> dict | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise BadRequest(f"{where} must be a JSON schema object")
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as error:
        raise BadRequest(f"{where} is not a valid JSON schema: {error.message[:200]}") from None
    return schema


def check_conforms(text: str, schema: dict | None) -> None:
    if schema is None:
        return
    try:
        value = json.loads(text)
    except ValueError:
        raise NotConforming("the offline LM's reply is not JSON although the request asked for a schema") from None
    error = next(iter(validators.validator_for(schema)(schema).iter_errors(value)), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the reply"
        raise NotConforming(f"the offline LM's reply does not conform to the request's schema at {where}: "
                            f"{error.message[:200]}")


def seed_of(body: dict) -> int | None:
    seed = body.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def reply_for(body: dict) -> tuple[str, dict]:
    """The offline LM's reply text and usage for a chat-completions body: the OfflineEngine's answer. Raises
    BadRequest for a malformed response_format and NotConforming for a reply outside its schema."""
    json_mode, schema = response_format_of(body)
    system, user = read_messages(body.get("messages") or [])
    prompt = read_prompt(system, user, seed=seed_of(body), json_mode=json_mode)
    text = write_reply(respond(prompt), prompt.output_types, json_reply=prompt.json_reply)
    check_conforms(text, schema)
    prompt_tokens, completion_tokens = (len(system) + len(user)) // 4, len(text) // 4  # the engine's Usage
    return text, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}


def completion(body: dict, text: str, usage: dict, number: int) -> dict:
    n = body.get("n")
    choices = min(max(n, 1), 16) if isinstance(n, int) and not isinstance(n, bool) else 1
    return {
        "id": f"chatcmpl-offline-{number}", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model") or MODEL_NAME, "system_fingerprint": "sage-offline",
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                     "logprobs": None} for i in range(choices)],
        "usage": usage,
    }


def error_body(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
