"""Old module names, kept importable so programs pickled before the subpackages still load.

MLflow stores a compiled program as a cloudpickle, which names each class by its module: a program logged
by sage-dspy 0.1.0 asks for `sage_dspy.loop.SageLoop`, `sage_dspy.retrieval.SearchTool`, `programs.sage`...
A finder placed first on sys.meta_path answers exactly these names (never a prefix). An old module that
moved whole is today's module object itself; one that was split (retrieval.py is now search/index.py,
tool.py and passages.py) is a module holding the public names of its parts. Either way the classes are
today's class objects, so isinstance checks hold across old and new names.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys

_MOVED = {
    "adapter": "lm.adapter", "attempts": "method.attempts", "bounds": "lm.bounds", "compare": "tracking.compare",
    "compiling": "runs.compile", "config": "lm.settings", "corpus": ("search.corpus", "search.passages"),
    "evaluation": "runs.evaluate", "evaluation_report": "runs.evaluate_report", "feedback": "method.feedback",
    "generator": "method.generator", "inflight": "lm.inflight", "judge": "method.judge", "lms": "lm.roles",
    "loop": "method.loop", "metrics": "method.metrics", "pair": "method.pair", "pipeline": "runs.generate",
    "pricing": "lm.pricing", "program_sources": "tracking.sources", "react": "lm.react", "records": "runs.records",
    "report": "runs.summary", "reviser": "method.reviser",
    "retrieval": ("search.index", "search.tool", "search.passages"),
    "run_logging": "tracking.run_logging", "run_store": "runs.folder", "signatures": "method.signatures",
    "solver": "method.solver", "solving": "runs.solve", "trajectory": "method.trajectory", "usage": "lm.usage",
}
_RECIPES = ["programs", "programs.sage", "programs.generator_only", "programs.resample",
            "optimizers", "optimizers.gepa", "optimizers.miprov2", "optimizers.bootstrap"]

OLD_TO_NEW = {f"sage_dspy.{old}": tuple(f"sage_dspy.{n}" for n in ((new,) if isinstance(new, str) else new))
              for old, new in _MOVED.items()}
OLD_TO_NEW.update({old: (f"sage_dspy.{old}",) for old in _RECIPES})


class LegacyNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old name as its new module(s). For a module moved whole, exec_module puts the real module
    into sys.modules under the old name (the import system returns whatever sys.modules holds there once
    exec_module ends); for a split one it copies the parts' public names into the fresh module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in OLD_TO_NEW:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return None  # a throwaway module; exec_module replaces it

    def exec_module(self, module):
        parts = [importlib.import_module(name) for name in OLD_TO_NEW[module.__name__]]
        if len(parts) == 1:
            sys.modules[module.__name__] = parts[0]
            return
        for part in parts:
            module.__dict__.update({key: value for key, value in vars(part).items() if not key.startswith("_")})


def install() -> None:
    if not any(isinstance(finder, LegacyNames) for finder in sys.meta_path):
        sys.meta_path.insert(0, LegacyNames())
