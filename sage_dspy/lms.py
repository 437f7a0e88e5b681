"""Language models per role: the offline LM by default, or any `dspy.LM` model string.

Roles get their LM through `dspy.context`, never `set_lm`, so saved programs carry no LM (and no key), and a
compiled generator can run with any LM.
"""

import contextlib
from dataclasses import dataclass, field

import dspy

from sage_dspy.offline.engine import MODEL_NAME, AsyncOfflineEngine, OfflineEngine

ROLES = ("generator", "solver", "judge", "reviser")
OFFLINE = "offline"
# The paper samples the generator and the search agent at temperature 1.0 and judges at 0.
DEFAULT_TEMPERATURES = {"generator": 1.0, "solver": 1.0, "judge": 0.0, "reviser": 1.0}


class LMConfigError(ValueError):
    """A model string that cannot name an LM; the message says what to pass instead."""


def offline_lm() -> dspy.LM:
    """The deterministic offline LM. seed=0 makes each solver rollout read a distinct seed."""
    engine = OfflineEngine()
    return dspy.LM(MODEL_NAME, engine=engine, async_engine=AsyncOfflineEngine(engine), cache=False, seed=0)


def build_lm(spec: str, role: str, *, api_base: str | None = None, max_tokens: int | None = None,
             seed: int | None = None, timeout: float | None = None, num_retries: int | None = None) -> dspy.LM:
    """A role's LM. `seed` makes each solver rollout send seed + k (distinct, reproducible samples, where the
    provider honours seeds); `timeout` bounds one request; DSPy retries 429/5xx/timeouts `num_retries` times
    with exponential backoff (its default is 3)."""
    spec = spec.strip()
    if spec == OFFLINE or spec == MODEL_NAME:
        return offline_lm()
    if "/" not in spec or spec.startswith("/") or spec.endswith("/"):
        raise LMConfigError(
            f"unknown LM {spec!r}: use 'offline' or a provider/model string such as openai/gpt-4o-mini "
            "or ollama_chat/llama3.1")
    settings = {"temperature": DEFAULT_TEMPERATURES.get(role, 0.0), "api_base": api_base, "max_tokens": max_tokens,
                "seed": seed, "timeout": timeout, "num_retries": num_retries}
    return dspy.LM(spec, **{name: value for name, value in settings.items() if value is not None})


def loggable_options(options: dict) -> dict:
    """LM options fit for logs and config files: an endpoint may carry credentials, so only say it is set."""
    return {name: ("<set>" if name == "api_base" and value else value) for name, value in options.items()}


@dataclass
class RoleLMs:
    """The LM each role uses; a missing role falls back to whatever LM is configured globally."""

    lms: dict[str, dspy.LM] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: dict[str, str], **options) -> "RoleLMs":
        unknown = set(specs) - set(ROLES)
        if unknown:
            raise LMConfigError(f"unknown role(s) {sorted(unknown)}: roles are {', '.join(ROLES)}")
        built: dict[str, dspy.LM] = {}
        shared: dict[str, dspy.LM] = {}
        for role, spec in specs.items():
            # One offline LM serves every role that asks for it; real LMs keep their per-role temperature.
            if spec.strip() == OFFLINE:
                built[role] = shared.setdefault(OFFLINE, offline_lm())
            else:
                built[role] = build_lm(spec, role, **options)
        return cls(built)

    def use(self, role: str):
        lm = self.lms.get(role)
        return dspy.context(lm=lm) if lm is not None else contextlib.nullcontext()

    def ids(self) -> dict[str, str]:
        """Model name per role, for records and MLflow (never the key or the endpoint)."""
        return {role: lm.model for role, lm in self.lms.items()}
