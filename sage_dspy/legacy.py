"""Old module names, kept importable so programs pickled before the subpackages still load.

MLflow stores a compiled program as a cloudpickle, which names each class by its module: a program logged
by sage-dspy 0.1.0 asks for `sage_dspy.loop.SageLoop`, `sage_dspy.retrieval.SearchTool`, `programs.sage`...
A finder placed first on sys.meta_path answers exactly these names (never a prefix) with today's module,
so the old name and the new one are the same module object and isinstance checks hold across them.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys

_MOVED = {
    "adapter": "lm.adapter", "attempts": "method.attempts", "bounds": "lm.bounds", "compare": "tracking.compare",
    "compiling": "runs.compile", "config": "lm.settings", "corpus": "search.corpus",
    "evaluation": "runs.evaluate", "evaluation_report": "runs.evaluate_report", "feedback": "method.feedback",
    "generator": "method.generator", "inflight": "lm.inflight", "judge": "method.judge", "lms": "lm.roles",
    "loop": "method.loop", "metrics": "method.metrics", "pair": "method.pair", "pipeline": "runs.generate",
    "pricing": "lm.pricing", "program_sources": "tracking.sources", "react": "lm.react", "records": "runs.records",
    "report": "runs.summary", "retrieval": "search.index", "reviser": "method.reviser",
    "run_logging": "tracking.run_logging", "run_store": "runs.folder", "signatures": "method.signatures",
    "solver": "method.solver", "solving": "runs.solve", "trajectory": "method.trajectory", "usage": "lm.usage",
}
_RECIPES = ["programs", "programs.sage", "programs.generator_only", "programs.resample",
            "optimizers", "optimizers.gepa", "optimizers.miprov2", "optimizers.bootstrap"]

OLD_TO_NEW = {f"sage_dspy.{old}": f"sage_dspy.{new}" for old, new in _MOVED.items()}
OLD_TO_NEW.update({old: f"sage_dspy.{old}" for old in _RECIPES})


class LegacyNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old name as its new module. exec_module puts the real module into sys.modules under the old
    name, and the import system returns whatever sys.modules holds there once exec_module ends."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in OLD_TO_NEW:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return None  # a throwaway module; exec_module replaces it

    def exec_module(self, module):
        sys.modules[module.__name__] = importlib.import_module(OLD_TO_NEW[module.__name__])


def install() -> None:
    if not any(isinstance(finder, LegacyNames) for finder in sys.meta_path):
        sys.meta_path.insert(0, LegacyNames())
