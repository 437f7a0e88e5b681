"""Every exception sage_dspy defines is either a SageError (bad input: the CLI prints one line, exit 2) or
listed below with the reason it never reaches the user. A new error class fails here until it says which."""

import importlib
import inspect
import pkgutil

import sage_dspy
from sage_dspy.errors import SageError

# Exceptions that are control flow inside the library, never shown to a user. Each entry is a claim a
# reviewer can check against the code that catches it.
INTERNAL = {
    "sage_dspy.lm.inflight.AttemptStopped":
        "ends an attempt once its result cannot matter; the solver records it on the attempt",
    "sage_dspy.method.loop.ServiceUnavailable":
        "every attempt of a round failed at the LM service; runs/generate records it on the seed",
}
SKIPPED_MODULES = {"sage_dspy.__main__"}  # importing it runs the CLI


def defined_exceptions() -> dict[str, type]:
    """Every Exception subclass (warnings aside) defined in a module of sage_dspy and its recipes."""
    roots = [sage_dspy, importlib.import_module("sage_dspy.programs"), importlib.import_module("sage_dspy.optimizers")]
    names = {root.__name__ for root in roots}
    for root in roots:
        names |= {info.name for info in pkgutil.walk_packages(root.__path__, root.__name__ + ".")}
    found = {}
    for name in sorted(names - SKIPPED_MODULES):
        for cls in vars(importlib.import_module(name)).values():
            if (inspect.isclass(cls) and issubclass(cls, Exception) and not issubclass(cls, Warning)
                    and cls.__module__.startswith("sage_dspy")):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_error_a_user_can_fix_is_a_sage_error():
    found = defined_exceptions()
    # the walk really reaches the modules that define errors (recipes included), so the check below means something
    assert {"CorpusError", "LMConfigError", "ConfigError", "TrackingError", "ProgramSourceError",
            "UnknownRecipeError", "UnknownOptimizerError", "LMUnreachableError", "RunMismatchError",
            "UnknownPriceError", "NotFoundError", "CompileSettingsError"} <= {c.__name__ for c in found.values()}
    undecided = sorted(name for name, cls in found.items() if name not in INTERNAL and not issubclass(cls, SageError))
    assert not undecided, f"inherit SageError (bad input the CLI prints) or list in INTERNAL with why: {undecided}"
    assert set(INTERNAL) <= set(found), "an INTERNAL entry names a class that no longer exists"
    assert not [name for name in INTERNAL if issubclass(found[name], SageError)]


def test_sage_errors_keep_their_builtin_base_for_library_callers():
    from sage_dspy.lm.roles import LMConfigError
    from sage_dspy.programs import UnknownRecipeError
    from sage_dspy.runs.generate import LMUnreachableError
    from sage_dspy.tracking.sources import ProgramSourceError

    for cls, base in ((LMConfigError, ValueError), (UnknownRecipeError, ValueError),
                      (LMUnreachableError, RuntimeError), (ProgramSourceError, LookupError)):
        assert issubclass(cls, SageError) and issubclass(cls, base), cls
