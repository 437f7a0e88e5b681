"""LM calls and tokens spent on one seed, counted from inside DSPy (callbacks and its usage tracker)."""

import threading
from contextlib import contextmanager

import dspy
from dspy.utils.callback import BaseCallback


class LMCallCounter(BaseCallback):
    """Counts LM calls per model; thread-safe so concurrent seeds can share one counter type."""

    def __init__(self):
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def on_lm_start(self, call_id, instance, inputs):
        with self._lock:
            self.calls[instance.model] = self.calls.get(instance.model, 0) + 1


@contextmanager
def counting_usage():
    """Yields a dict that, after the block, holds `lm_calls` and token totals for everything run inside."""
    counter, spent = LMCallCounter(), {"lm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    with dspy.context(callbacks=[*dspy.settings.callbacks, counter], track_usage=True):
        yield spent
    spent["lm_calls"] = sum(counter.calls.values())


def add_tokens(spent: dict, prediction) -> None:
    """Fold a prediction's per-model usage (DSPy's usage tracker) into `spent`."""
    usage = prediction.get_lm_usage() if prediction is not None else None
    for per_model in (usage or {}).values():
        spent["prompt_tokens"] += int(per_model.get("prompt_tokens") or 0)
        spent["completion_tokens"] += int(per_model.get("completion_tokens") or 0)
