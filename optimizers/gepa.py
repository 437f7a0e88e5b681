"""GEPA: reflects on the metric's feedback text with its own LM (the `reflection` role) to evolve prompts."""

import tempfile

import dspy

MIN_BUDGET = 10


def compile(student, *, trainset, valset, metric, budget, reflection_lm, seed=0, num_threads=1):
    if budget < MIN_BUDGET:
        raise ValueError(f"gepa needs a budget of at least {MIN_BUDGET} metric calls; raise --budget")
    # A fresh log_dir per compile: GEPA resumes whatever state a reused log_dir holds (STACK.md §4). It is
    # removed when the compile ends, failed or not: the compiled program holds everything worth keeping.
    with tempfile.TemporaryDirectory(prefix="sage-gepa-", ignore_cleanup_errors=True) as log_dir:
        optimizer = dspy.GEPA(metric=metric, max_metric_calls=budget, reflection_lm=reflection_lm,
                              reflection_minibatch_size=3, track_stats=True, log_dir=log_dir, num_threads=num_threads,
                              seed=seed)
        return optimizer.compile(student, trainset=trainset, valset=valset)
