"""Prices per model, in USD per million input and output tokens, and what a run's tokens cost at them.

Where a price comes from, first match wins:
1. the config file's `[prices]` table (`sage_dspy.lm.settings`);
2. the offline LM: free;
3. the LiteLLM price map DSPy ships with (`dspy.clients.model_metadata`, a bundled snapshot: no network with
   LITELLM_LOCAL_MODEL_COST_MAP=True, which importing sage_dspy sets; about 30 ms to load once, and litellm
   itself, 2 to 7 s to import, is never imported);
4. otherwise the price is unknown, and so is any cost that needs it: never guessed, never zero.

Costs are estimates: input and output tokens at the list price; cached-input discounts, long-context tiers and
reasoning-token rates are not modelled.
"""

from dataclasses import dataclass

from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.errors import SageError

PER_TOKENS = 1_000_000  # prices are per million tokens


class UnknownPriceError(SageError, ValueError):
    """A cost budget was asked for, but a model in use has no known price."""


@dataclass(frozen=True)
class Price:
    input: float  # USD per million prompt tokens
    output: float  # USD per million completion tokens
    source: str  # "config", "offline", or the bundled price map and its version

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER_TOKENS

    def to_dict(self) -> dict:
        return {"input_per_1m": self.input, "output_per_1m": self.output, "source": self.source}


def model_id(spec: str) -> str:
    """The model id a spec runs as: 'offline' is the offline LM's id, anything else is itself."""
    return MODEL_NAME if spec.strip() == "offline" else spec.strip()


def price_of(model: str, configured: dict[str, Price] | None = None) -> Price | None:
    """The model's price (config, offline, bundled map), or None when no source knows it."""
    model = model_id(model)
    configured = {model_id(name): price for name, price in (configured or {}).items()}
    if model in configured:
        return configured[model]
    if model == MODEL_NAME:
        return Price(0.0, 0.0, "offline")
    return _bundled_price(model)


def _bundled_price(model: str) -> Price | None:
    """From the LiteLLM map DSPy bundles: `provider/name` is looked up under the provider's namespaces."""
    provider, _, name = model.partition("/")
    if not name:
        return None
    try:
        from dspy.clients.model_metadata import model_info, rate, source_info

        info = model_info(provider, name)
        rates = rate(info, "input_cost_per_token"), rate(info, "output_cost_per_token")
        version = source_info().get("snapshot_version", "?")
    except Exception:  # advisory data: a failed lookup is an unknown price, never a failed run
        return None
    if None in rates:
        return None
    per_million = [round(value * PER_TOKENS, 9) for value in rates]
    return Price(*per_million, source=f"litellm price map {version} (bundled with dspy)")


def price_table(models, configured: dict[str, Price] | None = None) -> dict[str, Price | None]:
    """{model id: price or None} for every model given (specs or ids)."""
    return {model_id(model): price_of(model, configured) for model in models}


def require_prices(models, configured: dict[str, Price] | None = None) -> dict[str, Price]:
    """Every model's price, or UnknownPriceError naming the first model without one (for --max-cost)."""
    table = price_table(models, configured)
    for model, price in table.items():
        if price is None:
            raise UnknownPriceError(
                f"no price is known for {model!r}, so a cost budget (--max-cost) cannot be kept; add one to the "
                f'config file: [prices] "{model}" = {{ input = 0.15, output = 0.60 }} (USD per 1M tokens)')
    return table


def usage_cost(rows: list[dict], prices: dict[str, Price | None]) -> float | None:
    """What the usage rows (`lm_usage` of a record: role, model, tokens) cost; None if a model has no price."""
    total = 0.0
    for row in rows:
        price = prices.get(model_id(row["model"]))
        if price is None:
            return None
        total += price.cost(row["prompt_tokens"], row["completion_tokens"])
    return total
