"""Where a real LM's requests go: refusing endpoints that carry credentials, and the endpoint's fingerprint.

The fingerprint (a hash of scheme, host, port and path; never userinfo or query) is what DSPy's response cache
key lacks (it leaves `api_base` out, so two servers of one model name shared answers) and what a run folder
records to notice, on resume, that the endpoint changed. An LM with no `api_base` goes where its client's
environment sends it (LiteLLM and DSPy read <PROVIDER>_API_BASE / <PROVIDER>_BASE_URL), else to the provider.
"""

import functools
import hashlib
import os
from urllib.parse import urlsplit

from sage_dspy.errors import SageError

PROVIDER_DEFAULT = "provider-default"


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


def endpoint_of(model: str, kwargs: dict) -> str:
    """The endpoint an LM's requests reach: its api_base/base_url, the provider's environment variable, or the
    provider's default address."""
    explicit = kwargs.get("api_base") or kwargs.get("base_url")
    if explicit:
        return str(explicit)
    prefix = model.split("/", 1)[0].upper()
    for name in (f"{prefix}_API_BASE", f"{prefix}_BASE_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return PROVIDER_DEFAULT


def fingerprint(endpoint: str) -> str:
    """12 hex digits of scheme://host:port/path, lower-cased host, default port filled in, no trailing slash:
    the same server under spellings that reach it alike gets one fingerprint; userinfo and query are left out,
    so the fingerprint holds no secret."""
    if endpoint == PROVIDER_DEFAULT:
        return PROVIDER_DEFAULT
    try:
        parts = urlsplit(endpoint.strip())
        host = (parts.hostname or "").lower()
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        host, port, parts = endpoint.strip(), 0, urlsplit("")
    canonical = f"{parts.scheme.lower()}://{host}:{port}{parts.path.rstrip('/')}"
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def lm_fingerprint(lm) -> str:
    return _fingerprint_of(endpoint_of(lm.model, lm.kwargs))


@functools.lru_cache(maxsize=256)  # asked on every cached call's key: an LM's endpoint never changes
def _fingerprint_of(endpoint: str) -> str:
    return fingerprint(endpoint)


OPENAI_HOST = "api.openai.com"
KEYLESS_PLACEHOLDER = "sage-no-key"  # not a secret: what a keyless server is sent so the client will send at all


def serves_openai_elsewhere(model: str, kwargs: dict) -> bool:
    """An `openai/` model whose requests go to a server other than OpenAI's (llama.cpp, vLLM, a proxy)."""
    endpoint = endpoint_of(model, kwargs)
    if not model.startswith("openai/") or endpoint == PROVIDER_DEFAULT:
        return False
    try:
        return (urlsplit(endpoint.strip()).hostname or "").lower() != OPENAI_HOST
    except ValueError:
        return True


def keyless_placeholder(model: str, api_base: str | None) -> str | None:
    """A placeholder key for an `openai/` model at a server of its own when OPENAI_API_KEY is not set: DSPy's
    client refuses to send without a key, yet llama.cpp's and vLLM's servers started without --api-key take any
    (DSPy gives `hosted_vllm/` and `ollama_chat/` such a placeholder itself). A server that does check keys
    answers 401, which the preflight call reports as such. None where the provider's own key must be used."""
    if os.environ.get("OPENAI_API_KEY") or not serves_openai_elsewhere(model, {"api_base": api_base}):
        return None
    return KEYLESS_PLACEHOLDER
