"""LM settings per role, from command-line options, the environment or a TOML file, and prices per model.

Precedence: options > environment > TOML file > defaults. Sources are tried in that order for each role and
setting, and within one source a role's own setting beats the one for every role: `--lm X` on the command
line makes every role use X even when the file names a model for the judge. API keys are never read here: they
come from the provider's environment variable (OPENAI_API_KEY, ...), and a key in the file is refused.

The file (`--config sage.toml`, or SAGE_CONFIG):

    [lm]                      # every role
    model = "openai/gpt-4o-mini"
    api_base = "http://127.0.0.1:8000/v1"
    max_tokens = 4000
    seed = 0
    adapter = "json-schema"   # chat (the default), json, json-schema: how replies are asked for and read
    timeout = 60
    retries = 3
    parse_retries = 2         # fresh rollouts after a reply the adapter cannot parse
    reply_retries = 2         # retries of a 2xx reply that is not a completion (malformed JSON)

    [lm.judge]                # one role: generator, solver, judge, reviser, reflection
    model = "openai/gpt-4o"
    temperature = 0.0
    max_tokens = 200          # model, api_base, temperature, max_tokens, adapter

    [prices]                  # USD per million tokens; overrides the bundled price map
    "openai/my-model" = { input = 0.15, output = 0.60 }

    [breaker]                 # when a run stops on a failing backend (sage_dspy/breaker.py; 0 turns a test off)
    in_a_row = 5              # infrastructure failures in a row of one backend (the retriever, or a role's LM)
    rate = 0.5                # or this share failed of its last `window` calls
    window = 20

The environment: SAGE_LM, SAGE_API_BASE, SAGE_MAX_TOKENS, SAGE_ADAPTER, SAGE_LM_SEED, SAGE_LM_TIMEOUT,
SAGE_LM_RETRIES, SAGE_LM_PARSE_RETRIES, SAGE_LM_REPLY_RETRIES for every role, and SAGE_<ROLE>_LM, SAGE_<ROLE>_API_BASE,
SAGE_<ROLE>_TEMPERATURE, SAGE_<ROLE>_MAX_TOKENS, SAGE_<ROLE>_ADAPTER for one; SAGE_BREAKER_IN_A_ROW,
SAGE_BREAKER_RATE, SAGE_BREAKER_WINDOW for the breaker.
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from sage_dspy.lm.adapter import ADAPTERS, DEFAULT_ADAPTER
from sage_dspy.lm.endpoint import check_api_base
from sage_dspy.lm.roles import ALL_ROLES, OFFLINE, LMConfigError
from sage_dspy.lm.pricing import Price

RUN_KEYS = ("seed", "timeout", "retries", "parse_retries", "reply_retries")  # one value for every role
SHARED_KEYS = ("model", "api_base", "max_tokens", "adapter", *RUN_KEYS)
ROLE_KEYS = ("model", "api_base", "temperature", "max_tokens", "adapter")
PRICE_KEYS = ("input", "output")
BREAKER_KEYS = ("in_a_row", "rate", "window")  # sage_dspy.breaker.BreakerLimits's fields
TABLES = ("lm", "prices", "breaker")
SECRET_NAMES = ("key", "apikey", "token", "secret", "password")
# build_lm's names for the settings users write as below
OPTION_NAMES = {"api_base": "api_base", "max_tokens": "max_tokens", "temperature": "temperature",
                "seed": "seed", "timeout": "timeout", "retries": "num_retries", "parse_retries": "parse_retries",
                "reply_retries": "reply_retries", "adapter": "adapter"}


class ConfigError(LMConfigError):
    """A bad config file, environment variable or setting; the message is one line saying what to fix."""


@dataclass(frozen=True)
class Layer:
    """What one source says: settings for every role, per role, and prices. Absent means 'not said'."""

    shared: dict = field(default_factory=dict)
    roles: dict[str, dict] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    breaker: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LMSettings:
    """The resolved settings: a model per role, each role's LM options, the run-wide ones, and prices."""

    models: dict[str, str]
    options: dict[str, dict]  # role -> {api_base, temperature, max_tokens, adapter}, only those set
    run_options: dict  # seed, timeout, num_retries, parse_retries, reply_retries, only those set
    prices: dict[str, Price] = field(default_factory=dict)
    breaker: dict = field(default_factory=dict)  # BreakerLimits's fields, only those set

    def lms(self, roles=ALL_ROLES) -> dict[str, str]:
        return {role: self.models[role] for role in roles}

    def split(self, roles=ALL_ROLES) -> tuple[dict, dict[str, dict]]:
        """(lm_options, role_options) for `RoleLMs.from_specs`: a setting every role shares is stated once in
        lm_options (so a plain --api-base run is written as before), the rest per role."""
        shared = dict(self.run_options)
        for key in ("api_base", "max_tokens", "adapter"):
            values = {repr(self.options[role].get(key)) for role in roles}
            if len(values) == 1 and self.options[roles[0]].get(key) is not None:
                shared[key] = self.options[roles[0]][key]
        per_role = {}
        for role in roles:
            own = {key: value for key, value in self.options[role].items() if key not in shared}
            if own:
                per_role[role] = own
        return shared, per_role


def resolve(options: Layer, env: Layer, file: Layer) -> LMSettings:
    """Each role's settings from the first source that says something, a role's own setting first."""
    layers = (options, env, file)
    models, per_role = {}, {}
    for role in ALL_ROLES:
        chosen = {}
        for key in ROLE_KEYS:
            for layer in layers:
                value = layer.roles.get(role, {}).get(key)
                value = value if value is not None else layer.shared.get(key)
                if value is not None:
                    chosen[key] = value
                    break
        models[role] = chosen.pop("model", OFFLINE)
        if chosen.get("adapter") == DEFAULT_ADAPTER:
            del chosen["adapter"]  # the default, as if unset: a run that says `--adapter chat` is the run without it
        per_role[role] = {OPTION_NAMES[key]: value for key, value in chosen.items()}
    run_options = {}
    for key in RUN_KEYS:
        value = next((layer.shared[key] for layer in layers if layer.shared.get(key) is not None), None)
        if value is not None:
            run_options[OPTION_NAMES[key]] = value
    prices = {**file.prices, **env.prices, **options.prices}
    breaker = {key: value for key in BREAKER_KEYS
               if (value := next((layer.breaker[key] for layer in layers if layer.breaker.get(key) is not None),
                                 None)) is not None}
    return LMSettings(models, per_role, run_options, prices, breaker)


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None,
                  options: Layer | None = None) -> LMSettings:
    """Options (already parsed by the CLI) over the environment over the file over the defaults."""
    file = read_config_file(Path(config_file)) if config_file else Layer()
    return resolve(checked_options(options or Layer()), from_environment(environ or {}), file)


# The command-line option of each setting, for errors about a value typed there.
CLI_OPTIONS = {"model": "--lm", "api_base": "--api-base", "max_tokens": "--max-tokens", "seed": "--lm-seed",
                "timeout": "--lm-timeout", "retries": "--lm-retries", "parse_retries": "--lm-parse-retries"}


def checked_options(options: Layer) -> Layer:
    """The command line's values pass the same checks as the file's and the environment's, so a value refused in
    one place (`--lm-timeout inf`, `timeout = inf`) is refused in all."""
    shared = {key: _value(CLI_OPTIONS.get(key, key), key, value) for key, value in options.shared.items()}
    roles = {role: {key: _value(f"--{role}-lm" if key == "model" else key, key, value)
                    for key, value in settings.items()} for role, settings in options.roles.items()}
    return dataclasses.replace(options, shared=shared, roles=roles)


# ------------------------------------------------------------------------------------------- the TOML file

def read_config_file(path: Path) -> Layer:
    if not path.exists():  # a FIFO (`--config <(...)`) is no regular file but reads as one
        raise ConfigError(f"config file {path} does not exist; pass a TOML file (see README: Config file)")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; pass the TOML file of LM settings itself")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML ({str(error).splitlines()[0]})") from None
    _check_keys(path, "the top level", data, TABLES)
    lm = _table(path, "lm", data.get("lm", {}))
    _check_keys(path, "[lm]", lm, (*SHARED_KEYS, *ALL_ROLES))
    shared = {key: _value(f"{path}: [lm] {key}", key, lm[key]) for key in SHARED_KEYS if key in lm}
    roles = {}
    for role in ALL_ROLES:
        if role in lm:
            table = _table(path, f"lm.{role}", lm[role])
            _check_keys(path, f"[lm.{role}]", table, ROLE_KEYS)
            roles[role] = {key: _value(f"{path}: [lm.{role}] {key}", key, value) for key, value in table.items()}
    prices = {model: _price(path, model, entry)
              for model, entry in _table(path, "prices", data.get("prices", {})).items()}
    breaker = _table(path, "breaker", data.get("breaker", {}))
    _check_keys(path, "[breaker]", breaker, BREAKER_KEYS)
    return Layer(shared, roles, prices, {key: _value(f"{path}: [breaker] {key}", key, value)
                                         for key, value in breaker.items()})


def _is_secret(name: str) -> bool:
    name = name.lower()
    return name in SECRET_NAMES or name.endswith(tuple(f"_{secret}" for secret in SECRET_NAMES))


def _check_keys(path: Path, where: str, table: dict, allowed) -> None:
    for key in table:
        if _is_secret(key):
            raise ConfigError(f"{path}: {key!r} in {where} looks like a secret; keys come from the environment "
                              "only (the provider's variable, e.g. OPENAI_API_KEY), never from a config file")
        if key not in allowed:
            raise ConfigError(f"{path}: unknown key {key!r} in {where}; allowed: {', '.join(allowed)}")


def _table(path: Path, name: str, value) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a table ([{name}] followed by key = value lines)")
    return value


def _price(path: Path, model: str, entry) -> Price:
    where = f'[prices] "{model}"'
    if not isinstance(entry, dict):
        raise ConfigError(f'{path}: {where} must be a table such as {{ input = 0.15, output = 0.60 }} '
                          "(USD per 1M tokens)")
    _check_keys(path, where, entry, PRICE_KEYS)
    missing = [key for key in PRICE_KEYS if key not in entry]
    if missing:
        raise ConfigError(f"{path}: {where} needs {' and '.join(missing)} (USD per 1M tokens)")
    values = [_number(f"{path}: {where} {key}", entry[key], low=0.0) for key in PRICE_KEYS]
    return Price(*values, source="config")


# ------------------------------------------------------------------------------------------- the environment

def from_environment(environ: Mapping[str, str]) -> Layer:
    """SAGE_* variables; an empty value counts as unset. Other SAGE_* names are not ours to refuse."""
    shared_names = {"model": "SAGE_LM", "api_base": "SAGE_API_BASE", "max_tokens": "SAGE_MAX_TOKENS",
                    "adapter": "SAGE_ADAPTER",
                    "seed": "SAGE_LM_SEED", "timeout": "SAGE_LM_TIMEOUT", "retries": "SAGE_LM_RETRIES",
                    "parse_retries": "SAGE_LM_PARSE_RETRIES", "reply_retries": "SAGE_LM_REPLY_RETRIES"}
    role_names = {"model": "LM", "api_base": "API_BASE", "temperature": "TEMPERATURE", "max_tokens": "MAX_TOKENS",
                  "adapter": "ADAPTER"}
    shared = {key: _from_text(name, key, environ[name]) for key, name in shared_names.items()
              if environ.get(name, "").strip()}
    roles = {}
    for role in ALL_ROLES:
        found = {key: _from_text(name, key, environ[name]) for key, suffix in role_names.items()
                 if environ.get(name := f"SAGE_{role.upper()}_{suffix}", "").strip()}
        if found:
            roles[role] = found
    breaker = {key: _from_text(name, key, environ[name]) for key in BREAKER_KEYS
               if environ.get(name := f"SAGE_BREAKER_{key.upper()}", "").strip()}
    return Layer(shared, roles, breaker=breaker)


def _from_text(name: str, key: str, text: str):
    text = text.strip()
    if key in ("model", "api_base", "adapter"):
        return _value(name, key, text)
    try:
        value = float(text) if key in ("temperature", "timeout", "rate") else int(text)
    except ValueError:
        kind = "a number" if key in ("temperature", "timeout", "rate") else "a whole number"
        raise ConfigError(f"{name}={text!r} is not {kind}") from None
    return _value(name, key, value)


# ------------------------------------------------------------------------------------------- values

def _value(where: str, key: str, value):
    """One setting, checked wherever it came from; `where` names it in the error."""
    if key in ("model", "api_base"):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} must be a non-empty string")
        if key == "api_base":
            check_api_base(value, where)
        return value.strip()
    if key == "adapter":
        if value not in ADAPTERS:
            raise ConfigError(f"{where} must be one of {', '.join(ADAPTERS)}, not {value!r}")
        return value
    if key == "temperature":
        return _number(where, value, low=0.0, high=2.0)
    if key == "timeout":
        return _number(where, value, low=1.0)
    if key == "rate":
        return _number(where, value, low=0.0, high=1.0)
    low = {"max_tokens": 1, "seed": 0, "retries": 0, "parse_retries": 0, "reply_retries": 0, "in_a_row": 0,
           "window": 0}[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{where} must be a whole number of at least {low}, not {value!r}")
    return value


def _number(where: str, value, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or (high is not None and value > high):
        span = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
        raise ConfigError(f"{where} must be a number {span}, not {value!r}")
    return float(value)
