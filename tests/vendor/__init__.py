"""Consumers' own code, copied verbatim with its source and commit, so tests check rows against it."""
