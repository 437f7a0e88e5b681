"""sage-dspy: SAGE (steerable agentic data generation with execution feedback) as a DSPy program."""

from sage_dspy import environment as _environment
from sage_dspy import legacy as _legacy

_environment.apply_offline_defaults()
_legacy.install()  # programs pickled under the 0.1.0 module names keep loading

__version__ = "0.1.0"
