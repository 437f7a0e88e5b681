"""A seed's token usage on its trace, where MLflow's Traces tab reads it ("Token Usage").

MLflow's DSPy callback takes a module span's usage from the Prediction's `get_lm_usage()`, which DSPy fills only
for a call it tracked itself. Each seed's calls are counted by the pipeline's own tracker (lm/usage.py), and DSPy
then tracks nothing, so every trace showed 0 tokens. This callback, put before MLflow's, hands the seed's counts
to the outermost module's Prediction as that call ends, just before MLflow reads it."""

import threading

import dspy
from dspy.utils.callback import BaseCallback

from sage_dspy.lm.usage import RoleUsageTracker


class SeedUsageOnTrace(BaseCallback):
    """Per thread, the outermost module call (a seed's program) gets the usage its seed's tracker holds."""

    def __init__(self):
        self._local = threading.local()

    def on_module_start(self, call_id, instance, inputs):
        stack = self._stack()
        stack.append(call_id)

    def on_module_end(self, call_id, outputs, exception=None):
        stack = self._stack()
        outermost = bool(stack) and stack[0] == call_id
        if stack and stack[-1] == call_id:
            stack.pop()
        tracker = dspy.settings.usage_tracker
        if not outermost or not isinstance(outputs, dspy.Prediction) or not isinstance(tracker, RoleUsageTracker):
            return
        if not outputs.get_lm_usage():
            outputs.set_lm_usage(usage_by_model(tracker))

    def _stack(self) -> list:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack


def usage_by_model(tracker: RoleUsageTracker) -> dict[str, dict[str, int]]:
    """{model: {prompt_tokens, completion_tokens, total_tokens}}: DSPy's shape for a Prediction's LM usage."""
    usage: dict[str, dict[str, int]] = {}
    for (_, model), (prompt, completion) in dict(tracker.tokens).items():
        row = usage.setdefault(model, {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        row["prompt_tokens"] += prompt
        row["completion_tokens"] += completion
        row["total_tokens"] += prompt + completion
    return usage


def with_usage_callback(callbacks: list, enabled: bool) -> list:
    """`callbacks` with one SeedUsageOnTrace first (before MLflow's, which reads what it sets), or none."""
    others = [callback for callback in callbacks if not isinstance(callback, SeedUsageOnTrace)]
    return [SeedUsageOnTrace(), *others] if enabled else others
