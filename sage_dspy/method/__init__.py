"""The paper's method, with no I/O: signatures, the generator, the search agent (solver), the judge, the
reviser, the revision loop, verdicts and the metric. Imports lm/, search/ and the root's answers/errors/redact
only; never runs/, cli/ or tracking/.
"""
