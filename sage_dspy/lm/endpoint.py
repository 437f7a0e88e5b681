"""Where a real LM's requests go: endpoints that carry credentials are refused."""

from urllib.parse import urlsplit

from sage_dspy.errors import SageError


class EndpointError(SageError, ValueError):
    """An endpoint URL the LM clients cannot use as written."""


def check_api_base(api_base: str, where: str = "--api-base") -> str:
    """Refuse user:password@ in an endpoint. DSPy's native client (lm15) reads `user:pass@host` as the host name
    (every call fails to resolve it), and LiteLLM's httpx turns it into Basic auth that replaces the provider's
    Bearer key: neither sends it the way an OpenAI-compatible server expects a key. The message never repeats
    the URL, which holds the secret."""
    try:
        parts = urlsplit(api_base.strip())
    except ValueError:
        raise EndpointError(f"{where} is not a URL; pass one such as http://127.0.0.1:8000/v1") from None
    if "@" in parts.netloc:
        raise EndpointError(
            f"{where} carries credentials (user:password@ before the host), which the LM client would take as "
            "part of the host name; pass the URL without them and the key in the provider's variable "
            "(e.g. OPENAI_API_KEY)")
    return api_base
