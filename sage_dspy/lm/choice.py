"""Which adapter a role runs with: `--adapter` names one of `ADAPTERS` (lm.adapter), built here once.

`chat` is lm.adapter's ChatAdapter (DSPy's field markers, its JSON fallback, parse retries); `json` and
`json-schema` are lm.structured's. `RoleLMs.use` installs the role's where no adapter is configured.
"""

import dspy

from sage_dspy.lm.adapter import ADAPTERS, DEFAULT_ADAPTER, ChatAdapter
from sage_dspy.lm.structured import JSONAdapter, JSONSchemaAdapter

_BUILDERS = {"chat": ChatAdapter, "json": JSONAdapter, "json-schema": JSONSchemaAdapter}
_adapters: dict = {}


def adapter_named(name: str | None) -> dspy.Adapter:
    """The adapter for `name` (the default for None). One instance per name: they hold no per-call state."""
    name = name or DEFAULT_ADAPTER
    if name not in _BUILDERS:
        raise ValueError(f"unknown adapter {name!r}: choose one of {', '.join(ADAPTERS)}")
    if name not in _adapters:
        _adapters[name] = _BUILDERS[name]()
    return _adapters[name]


def adapter_settings(name: str | None = None) -> dict:
    """`dspy.context` settings that install the named adapter where none is configured (a configured one wins)."""
    return {} if dspy.settings.adapter is not None else {"adapter": adapter_named(name)}
