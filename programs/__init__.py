"""Program recipes: each file assembles one variant of the SAGE program from the same parts.

An ablation is a new recipe, not a flag threaded through the core. Every recipe exposes
`build(search, *, k, max_rounds, lms) -> SageLoop`.
"""

import importlib

from sage_dspy.errors import SageError

RECIPES = ("sage", "generator_only", "resample")


class UnknownRecipeError(SageError, ValueError):
    pass


def load_recipe(name: str):
    if name not in RECIPES:
        raise UnknownRecipeError(f"unknown program recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return importlib.import_module(f"sage_dspy.programs.{name}")
