"""`--max-tokens` as the field an OpenAI-compatible server of its own honours: `max_tokens`.

DSPy 3.4's native client (lm15) writes the reply bound of every `openai/` model in OpenAI's current spelling,
`max_completion_tokens` (its "openai" preset), wherever `api_base` points. llama.cpp's server ignores that field
(replies of 753 tokens under `--max-tokens 256`, one call over 10 minutes: ../shared/data/real-llm); it reads
`max_tokens`, which vLLM, SGLang, Ollama and LM Studio read too (lm15's own presets for those servers send
`max_tokens`). DSPy's other path, LiteLLM, sends `max_tokens` for `openai/` models already (its OpenAI config
maps the field only for o-series models). So for an `openai/` model at an endpoint that is not api.openai.com,
the bound goes as `max_tokens`, as LiteLLM sends it, except for OpenAI's reasoning models (o1, o3, gpt-5...),
which refuse `max_tokens` behind any proxy. Requests to OpenAI itself are unchanged.
"""

import functools
from urllib.parse import urlsplit

from dspy._vendor.lm15.providers.openai_chat import OpenAIChatLM
from dspy.clients.lm import _is_openai_reasoning_model

from sage_dspy.lm.endpoint import OPENAI_HOST

OPENAI_PROVIDER = "openai-chat"  # lm15's provider id for `openai/` models


def _elsewhere(base_url: str) -> bool:
    try:
        return (urlsplit(base_url).hostname or "").lower() != OPENAI_HOST
    except ValueError:
        return True


def send_max_tokens_to_served_models() -> None:
    """Wrap lm15's chat payload builder once (idempotent): see the module's docstring."""
    original = OpenAIChatLM._payload
    if getattr(original, "served_max_tokens", False):
        return

    @functools.wraps(original)
    def payload(self, request, stream):
        body = original(self, request, stream)
        if ("max_completion_tokens" in body and "max_tokens" not in body
                and getattr(self, "provider", "") == OPENAI_PROVIDER and _elsewhere(str(self.base_url))
                and not _is_openai_reasoning_model(str(request.model))):
            body["max_tokens"] = body.pop("max_completion_tokens")
        return body

    payload.served_max_tokens = True
    OpenAIChatLM._payload = payload
