"""Optimizer recipes: each file is one DSPy optimizer setting for the generator's prompts.

Every recipe exposes `compile(student, *, trainset, valset, metric, budget, reflection_lm, seed, num_threads)
-> Module` (num_threads: seeds DSPy scores at once),
where `metric` returns `dspy.Prediction(score, feedback)` (sage_dspy.method.metrics.sage_metric).
"""

import importlib

from sage_dspy.errors import SageError

OPTIMIZERS = ("bootstrap", "miprov2", "gepa")


class UnknownOptimizerError(SageError, ValueError):
    pass


def load_optimizer(name: str):
    if name not in OPTIMIZERS:
        raise UnknownOptimizerError(f"unknown optimizer recipe {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return importlib.import_module(f"sage_dspy.optimizers.{name}")


def score_only(metric):
    """Optimizers other than GEPA want a number: the metric's score."""
    def scored(example, prediction, trace=None):
        return metric(example, prediction, trace).score
    return scored
