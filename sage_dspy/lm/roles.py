"""Language models per role: the offline LM by default, or any `dspy.LM` model string.

Roles get their LM through `dspy.context`, never `set_lm`, so saved programs carry no LM (and no key), and a
compiled generator can run with any LM. `RoleLMs.use(role)` also names the role its calls are charged to
(`sage_dspy.lm.usage`). Where the settings come from (options, environment, a TOML file) is `sage_dspy.lm.settings`.
"""

import contextlib
from dataclasses import dataclass, field

import dspy
from dspy.utils.exceptions import LMConfigurationError

from sage_dspy.lm.adapter import DEFAULT_ADAPTER
from sage_dspy.lm.choice import adapter_settings
from sage_dspy.lm.bounds import apply_memory_bounds
from sage_dspy.lm.endpoint import check_api_base, keyless_placeholder, lm_fingerprint
from sage_dspy.lm.inflight import SageLM, current_lane
from sage_dspy.lm.metadata_lookup import remember_model_metadata
from sage_dspy.offline.engine import MODEL_NAME, AsyncOfflineEngine, OfflineEngine
from sage_dspy.lm.usage import acting_as
from sage_dspy.errors import SageError
from sage_dspy.redact import redact_text

ROLES = ("generator", "solver", "judge", "reviser")
ALL_ROLES = (*ROLES, "reflection")  # reflection: GEPA's LM in `sage compile`
OFFLINE = "offline"
# DSPy's native HTTP client pools at most 100 connections per dspy.LM (lm15's DEFAULT_MAX_CONNECTIONS), and
# dspy.LM has no setting for it: a call beyond 100 waits for a free connection. Measured with 256 calls in
# flight over the loopback server, the solver's LM plateaued at 100 (bench/throughput.py).
CONNECTIONS_PER_LM = 100
# The paper samples the generator and the search agent at temperature 1.0 and judges at 0. GEPA's reflection
# LM samples at 1.0, as DSPy's GEPA documentation configures it.
DEFAULT_TEMPERATURES = {"generator": 1.0, "solver": 1.0, "judge": 0.0, "reviser": 1.0, "reflection": 1.0}


FAILED_ROLE = "sage_failed_role"  # set on an exception that leaves RoleLMs.use: which role's call raised it


def failed_role(error: BaseException) -> str:
    """The role whose call raised `error` (the innermost `RoleLMs.use` it left), or "" outside any role."""
    return getattr(error, FAILED_ROLE, "")


class LMConfigError(SageError, ValueError):
    """A model string that cannot name an LM; the message says what to pass instead."""


def offline_lm() -> dspy.LM:
    """The deterministic offline LM. seed=0 makes each solver rollout read a distinct seed."""
    engine = OfflineEngine()
    return SageLM(MODEL_NAME, engine=engine, async_engine=AsyncOfflineEngine(engine), cache=False, seed=0)


def build_lm(spec: str, role: str, *, api_base: str | None = None, max_tokens: int | None = None,
             seed: int | None = None, timeout: float | None = None, num_retries: int | None = None,
             temperature: float | None = None, parse_retries: int | None = None,
             reply_retries: int | None = None) -> dspy.LM:
    """A role's LM. `temperature` defaults to the role's (DEFAULT_TEMPERATURES); `max_tokens` bounds one reply;
    `seed` makes each solver rollout send seed + k (distinct, reproducible samples, where the provider honours
    seeds); `timeout` bounds one request; DSPy retries 429/5xx/timeouts `num_retries` times with exponential
    backoff (its default is 3); a malformed 2xx reply is retried `reply_retries` times and a reply the adapter
    cannot parse `parse_retries` times as a fresh rollout (SageLM; both default to 2). The offline LM ignores
    every setting."""
    spec = spec.strip()
    if spec == OFFLINE or spec == MODEL_NAME:
        return offline_lm()
    if "/" not in spec or spec.startswith("/") or spec.endswith("/"):
        raise LMConfigError(
            f"unknown LM {spec!r}: use 'offline' or a provider/model string such as openai/gpt-4o-mini "
            "or ollama_chat/llama3.1")
    if api_base is not None:
        check_api_base(api_base)
    if temperature is None:
        temperature = DEFAULT_TEMPERATURES.get(role, 0.0)
    api_key = keyless_placeholder(spec, api_base)
    settings = {"api_key": api_key, "temperature": temperature, "api_base": api_base, "max_tokens": max_tokens,
                "seed": seed, "timeout": timeout, "num_retries": num_retries, "parse_retries": parse_retries,
                "reply_retries": reply_retries}
    try:
        return SageLM(spec, **{name: value for name, value in settings.items() if value is not None})
    except (ValueError, LMConfigurationError) as error:  # e.g. reasoning models refuse temperature 0
        reason = redact_text(str(error)).splitlines()[0] if str(error) else type(error).__name__
        raise LMConfigError(f"the {role} LM {spec!r} refused its settings: {reason}") from None


def loggable_options(options: dict) -> dict:
    """LM options fit for logs and config files: an endpoint may carry credentials, so only say it is set."""
    return {name: ("<set>" if name == "api_base" and value else value) for name, value in options.items()}


@dataclass
class RoleLMs:
    """The LM each role uses; a missing role falls back to whatever LM is configured globally."""

    lms: dict[str, dspy.LM] = field(default_factory=dict)
    # Per real role, independent LMs with the same settings, each with its own connection pool: work in lane n
    # (`inflight.in_lane`) uses lanes[role][n % count]. They share DSPy's response cache (keyed by model and
    # request), so a lane changes which connection a call takes, never its answer.
    lanes: dict[str, list[dspy.LM]] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)  # role -> its --adapter (lm.adapter.ADAPTERS)

    @staticmethod
    def lanes_for(calls_in_flight: int) -> int:
        return max(1, -(-calls_in_flight // CONNECTIONS_PER_LM))

    @classmethod
    def from_specs(cls, specs: dict[str, str], role_options: dict[str, dict] | None = None, *,
                   lanes: int = 1, **options) -> "RoleLMs":
        """`options` go to every role's `build_lm`; `role_options[role]` (temperature, max_tokens, api_base)
        override them for one role. `lanes` LMs per real role lift DSPy's connection cap (see `lanes_for`)."""
        unknown = set(specs) - set(ROLES)
        if unknown:
            raise LMConfigError(f"unknown role(s) {sorted(unknown)}: roles are {', '.join(ROLES)}")
        apply_memory_bounds()  # long runs: DSPy's per-call history, trace and response cache capped (bounds.py)
        remember_model_metadata()  # pricing each reply: a map walk per call otherwise (metadata_lookup.py)
        built: dict[str, dspy.LM] = {}
        shared: dict[str, dspy.LM] = {}
        extra: dict[str, list[dspy.LM]] = {}
        adapters = {}
        for role, spec in specs.items():
            settings = {**options, **(role_options or {}).get(role, {})}
            adapters[role] = settings.pop("adapter", None) or DEFAULT_ADAPTER  # the role's, installed by `use`
            # One offline LM serves every role that asks for it; real LMs keep their per-role temperature.
            if spec.strip() == OFFLINE:
                built[role] = shared.setdefault(OFFLINE, offline_lm())
            else:
                built[role] = build_lm(spec, role, **settings)
                if lanes > 1:
                    extra[role] = [built[role], *(build_lm(spec, role, **settings) for _ in range(lanes - 1))]
        return cls(built, extra, adapters)

    @contextlib.contextmanager
    def use(self, role: str):
        """Calls inside run on the role's LM (the global one if it has none) and adapter, and are charged to the
        role."""
        lm = self.lms.get(role)
        if role in self.lanes:
            lm = self.lanes[role][current_lane() % len(self.lanes[role])]
        try:
            adapter = adapter_settings(self.adapters.get(role))
            with acting_as(role), dspy.context(**({"lm": lm} if lm is not None else {}), **adapter):
                yield
        except Exception as error:
            if not hasattr(error, FAILED_ROLE):  # the innermost role whose call failed
                setattr(error, FAILED_ROLE, role)
            raise

    def endpoints(self) -> dict[str, str]:
        """Per role with a real LM, the fingerprint of the endpoint its requests reach (never the URL)."""
        return {role: lm_fingerprint(lm) for role, lm in self.lms.items() if lm.model != MODEL_NAME}

    def ids(self) -> dict[str, str]:
        """Model name per role, for records and MLflow (never the key or the endpoint)."""
        return {role: lm.model for role, lm in self.lms.items()}
