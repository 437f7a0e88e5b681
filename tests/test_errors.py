"""Every exception sage_dspy defines is either a SageError (bad input: the CLI prints one line, exit 2) or
listed below with the reason it never reaches the user. A new error class fails here until it says which.
The CLI catches SageError in one place and nothing else, so a bug keeps its traceback."""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import sage_dspy
import sage_dspy.cli.generate
from cli_helpers import assert_one_line_error, invoke
from sage_dspy.errors import SageError
from sage_dspy.tracking import store as tracking

# Exceptions that are control flow inside the library, never shown to a user. Each entry is a claim a
# reviewer can check against the code that catches it.
INTERNAL = {
    "sage_dspy.lm.inflight.AttemptStopped":
        "ends an attempt once its result cannot matter; the solver records it on the attempt",
    "sage_dspy.method.loop.ServiceUnavailable":
        "a round is void (an attempt failed at the infrastructure); runs/scheduler records it on the seed",
    "sage_dspy.offline.replay.NoRecordedReply":
        "a recording holds no reply of that kind; the replay server answers the request with a 500 naming it",
    "sage_dspy.search.remote.SearchFailed":
        "the retriever's answer was unusable; search/tool.py turns it into the observation the agent reads",
    "sage_dspy.search.remote.RetrieverUnavailable":
        "a void search; lm/react ends the attempt with it, the solver or the seed's record keeps it",
    "sage_dspy.breaker.BackendFault":
        "the base of the two above and below: a backend failed at the infrastructure; recorded as void",
    "sage_dspy.breaker.BreakerOpen":
        "a call not made once the breaker tripped; recorded as void, and the run ends with BackendDown",
    "sage_dspy.offline.wire.BadRequest":
        "a malformed request body at the offline server; offline/http.py answers it with a 400, as a real server",
    "sage_dspy.offline.wire.NotConforming":
        "the offline LM's reply breaks the request's schema; offline/http.py answers it with a 500 naming why",
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
    from sage_dspy.runs.preflight import LMUnreachableError
    from sage_dspy.tracking.sources import ProgramSourceError

    for cls, base in ((LMConfigError, ValueError), (UnknownRecipeError, ValueError),
                      (LMUnreachableError, RuntimeError), (ProgramSourceError, LookupError)):
        assert issubclass(cls, SageError) and issubclass(cls, base), cls


class NewUserError(SageError, ValueError):
    """An error the CLI has never heard of: inheriting SageError is all it takes to be printed right."""


def raising(error: Exception):
    def raise_it(*args, **kwargs):
        raise error
    return raise_it


@pytest.mark.parametrize("args", [("generate", "--no-track"), ("runs", "compare"), ("ui",)])
def test_any_sage_error_from_any_command_is_one_line_and_exit_2(workdir, monkeypatch, args):
    monkeypatch.setattr(sage_dspy.cli.generate, "open_corpus", raising(NewUserError("no such thing; pass another")))
    monkeypatch.setattr(tracking, "configure_tracking", raising(NewUserError("no such thing; pass another")))
    (workdir / "pyproject.toml").write_text('[project]\nname = "sage-dspy"\n')  # `sage ui` looks for its project
    assert_one_line_error(invoke(*args), "no such thing; pass another")


def test_a_bug_keeps_its_traceback(workdir, monkeypatch):
    monkeypatch.setattr(sage_dspy.cli.generate, "open_corpus", raising(KeyError("a bug")))
    result = invoke("generate", "--no-track")
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_the_cli_has_one_error_handler_and_it_catches_sage_error_only():
    """A command that caught ValueError itself would print bugs as if they were bad input. Besides the handler,
    only the parsing of a number the user typed (or MLflow stored) may catch, and it catches ValueError; Click's
    own usage errors (a bad option value, an unknown option) become the same one line; and generate and evaluate
    catch Ctrl-C (and SIGTERM, raised as it) to say what is saved and how to resume."""
    handlers = set()
    for path in sorted(Path(sage_dspy.cli.generate.__file__).parent.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(function, ast.FunctionDef):
                handlers |= {(path.name, function.name, ast.unparse(node.type) if node.type else "everything")
                             for node in ast.walk(function) if isinstance(node, ast.ExceptHandler)}
    assert handlers == {("options.py", "invoke", "SageError"), ("options.py", "parse_targets", "ValueError"),
                        ("options.py", "invoke", "USAGE_ERRORS"), ("options.py", "make_context", "USAGE_ERRORS"),
                        ("printing.py", "_score", "ValueError"), ("generate.py", "generate_command", "KeyboardInterrupt"), ("evaluate.py", "evaluate_command", "KeyboardInterrupt")}
