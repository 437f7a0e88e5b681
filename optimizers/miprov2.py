"""MIPROv2 (light): proposes instructions from the program, data and demos, and searches them with optuna."""

import dspy

from sage_dspy.optimizers import score_only

MIN_BUDGET = 2


def compile(student, *, trainset, valset, metric, budget, reflection_lm=None, seed=0, num_threads=1):
    if budget < MIN_BUDGET:
        raise ValueError(f"miprov2 needs a budget of at least {MIN_BUDGET} trials; raise --budget")
    if len(valset) < 2:
        raise ValueError("miprov2 needs at least 2 validation seeds; raise --val-size")
    optimizer = dspy.MIPROv2(metric=score_only(metric), auto=None, num_candidates=3, max_bootstrapped_demos=1,
                             max_labeled_demos=0, num_threads=num_threads, seed=seed, verbose=False)
    # MIPROv2's minibatches must not exceed the valset (STACK.md §4).
    return optimizer.compile(student, trainset=trainset, valset=valset, num_trials=min(budget, 10),
                             minibatch_size=min(35, len(valset)), requires_permission_to_run=False)
