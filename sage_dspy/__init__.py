"""sage-dspy: SAGE (steerable agentic data generation with execution feedback) as a DSPy program."""

from sage_dspy import environment as _environment

_environment.apply_offline_defaults()

__version__ = "0.1.0"
