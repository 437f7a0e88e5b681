"""The OpenAI chat-completions format, as the offline server reads and writes it: the prompt out of a request
body (system and last message, `seed`, JSON mode), the offline LM's reply and usage, a completion body and an
error body. The reply is exactly the in-process `OfflineEngine`'s, through the same functions (`read_prompt`,
`respond`, `write_reply`)."""

import time

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


def json_mode_of(body: dict) -> bool:
    """A `response_format` other than plain text asks for JSON, as `Request.config.response_format` does."""
    fmt = body.get("response_format")
    return fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text")


def seed_of(body: dict) -> int | None:
    seed = body.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def reply_for(body: dict) -> tuple[str, dict]:
    """The offline LM's reply text and usage for a chat-completions body: the OfflineEngine's answer."""
    system, user = read_messages(body.get("messages") or [])
    prompt = read_prompt(system, user, seed=seed_of(body), json_mode=json_mode_of(body))
    text = write_reply(respond(prompt), prompt.output_types, json_reply=prompt.json_reply)
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
