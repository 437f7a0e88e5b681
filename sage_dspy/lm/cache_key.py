"""The endpoint in DSPy's response-cache key.

DSPy 3.4 keys a cached response on the model name and the request, and leaves `api_base`/`base_url` out
(`dspy.clients.execution.IGNORED_CACHE_KEYS`), so after a run against one server, another server (or a dead
one) of the same model name was answered from the cache. Every setting that changes the answers (temperature,
max_tokens, seed, rollout) is already in the key; the endpoint is added here, as its fingerprint, for the LMs
that ask for it (`SageLM.keys_cache_by_endpoint`). Other LMs keep DSPy's key.
"""

import functools

from dspy.clients import execution

from sage_dspy.lm.endpoint import lm_fingerprint

ENDPOINT_KEY = "sage_endpoint"


def key_cache_by_endpoint() -> None:
    """Wrap `PreparedCall.key` once (idempotent): the key of a call on an LM with `keys_cache_by_endpoint`
    gets the fingerprint of the endpoint its requests reach."""
    original = execution.PreparedCall.key
    if getattr(original, "keys_endpoint", False):
        return

    @functools.wraps(original)
    def key(self, lm, asynchronous):
        found = original(self, lm, asynchronous)
        if getattr(lm, "keys_cache_by_endpoint", False):
            found[ENDPOINT_KEY] = lm_fingerprint(lm)
        return found

    key.keys_endpoint = True
    execution.PreparedCall.key = key
