"""BootstrapFewShotWithRandomSearch: demos from the program's own accepted runs, best of `budget` candidates."""

import dspy

from sage_dspy.optimizers import score_only

MIN_BUDGET = 2
# Its search keeps a demo (and scores a candidate) only where the metric reaches 1.0, so its log's "Best score
# so far" is the share of such seeds, not the mean metric that `before` and `after` report.
SEARCH_SCORE = ("bootstrap's search thresholds the metric (a seed counts only at 1.0), so its log's \"Best score "
                "so far\" is not the mean metric reported as before/after")


def compile(student, *, trainset, valset, metric, budget, reflection_lm=None, seed=0, num_threads=1):
    if budget < MIN_BUDGET:
        raise ValueError(f"bootstrap needs a budget of at least {MIN_BUDGET} candidate programs; raise --budget")
    scored = score_only(metric)
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=lambda example, prediction, trace=None: scored(example, prediction, trace) >= 1.0,
        max_bootstrapped_demos=2, max_labeled_demos=0, num_candidate_programs=min(budget, 4),
        num_threads=num_threads)
    return optimizer.compile(student, trainset=trainset, valset=valset)
