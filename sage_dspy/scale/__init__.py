"""Seeds on a distributed engine (Ray, the optional extra `sage-dspy[ray]`): actors that run seeds, while the
driver in runs/ stays the one writer of the run folder. Imports runs/, lm/, search/ and method/; never cli/ or
tracking/. Ray itself is imported only once a run asks for it (`--ray`).
"""
