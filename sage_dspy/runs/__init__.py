"""One run of a job over a corpus, as folders on disk: generate (seeds, budgets, scheduling, resume),
evaluate, solve, compile, their records and summaries. Imports method/, lm/, search/, the recipes
(programs/, optimizers/) and offline/; never cli/ or tracking/.
"""
