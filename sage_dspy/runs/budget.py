"""A run's budgets, in LM calls and in USD: what a seed spent is charged once it finishes."""

from dataclasses import dataclass, field

from sage_dspy.lm.pricing import usage_cost


@dataclass
class CallBudget:
    """The run's budgets: LM calls (`limit`) and cost in USD (`max_cost`, at `prices`); resumed seeds count as
    spent. No new seed starts once either is spent; seeds already running finish and are saved, so nothing
    paid for is lost."""

    limit: int | None
    spent: int = 0
    max_cost: float | None = None
    cost: float = 0.0
    prices: dict = field(default_factory=dict)  # model id -> pricing.Price, for every model in use

    def allows_more(self) -> bool:
        return not self.spent_budget()

    def spent_budget(self) -> str:
        """Which budget is spent: 'calls', 'cost' or ''."""
        if self.limit is not None and self.spent >= self.limit:
            return "calls"
        if self.max_cost is not None and self.cost >= self.max_cost:
            return "cost"
        return ""

    def charge(self, record: dict) -> None:
        self.spent += record.get("lm_calls", 0)
        if self.max_cost is not None:
            self.cost += usage_cost(record.get("lm_usage", []), self.prices) or 0.0

    def stop_reason(self, finished: int, total: int) -> str:
        if finished >= total or not self.spent_budget():
            return ""
        return f"{self.spent_phrase()} after {finished} of {total} seeds"

    def spent_phrase(self) -> str:
        """Which budget is spent, in words ('' when none is)."""
        kind = self.spent_budget()
        if not kind:
            return ""
        return (f"LM-call budget of {self.limit} spent" if kind == "calls"
                else f"cost budget of ${self.max_cost:g} spent (${self.cost:.4f})")
