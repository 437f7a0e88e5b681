"""DSPy's model-metadata lookup, remembered per model, so pricing a reply costs microseconds, not milliseconds.

After every LM call DSPy 3.4 prices the reply (`dspy.clients.costs._estimate_cost`), looking the model up
twice in LiteLLM's price map with `model_metadata.model_info`. For a name the map does not hold (the offline
LM's `openai/sage-offline`, any self-hosted model) each lookup walks all of the map's ~4,500 entries looking
for an alias, then tries every family rule's regular expression: 1.3 to 2.6 ms of CPU each, twice a call. At 256
calls in flight that was 30% of the generate process's time under the GIL (py-spy, bench/throughput.py), the
largest single cost on the client.

The answer can be remembered exactly: `model_info` reads only its arguments and the map, and DSPy loads the
map once per process and never changes it (`model_metadata._load`). Each caller still gets its own deep copy,
as `model_info` itself returns one.
"""

import copy
import functools
import threading

from dspy.clients import capabilities, costs, model_metadata

_install_lock = threading.Lock()


def remembered_model_info(original):
    """`original` (model_info's signature) with its answers kept per (provider, model, namespaces)."""

    @functools.lru_cache(maxsize=1024)
    def lookup(provider, model, namespaces):
        return original(provider, model, namespaces=None if namespaces is None else list(namespaces))

    @functools.wraps(original)
    def model_info(provider, model, *, namespaces=None):
        try:
            key = None if namespaces is None else tuple(namespaces)
            found = lookup(provider, model, key)
        except TypeError:  # an unhashable argument: not ours to remember
            return original(provider, model, namespaces=namespaces)
        return copy.deepcopy(found)

    model_info.remembered = lookup
    return model_info


def remember_model_metadata() -> None:
    """Point DSPy's pricing and capability code at the remembered lookup. Idempotent."""
    with _install_lock:
        for module in (costs, capabilities):
            if not hasattr(module.model_info, "remembered"):
                module.model_info = remembered_model_info(model_metadata.model_info)
