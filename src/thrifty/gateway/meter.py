"""Meter: what a request cost, and what the all-cloud baseline would have cost.

- cloud: the price table in force at the request's time (hit/miss split, peak windows);
- local: the machine's cost for the time the engine spent on the request. Requests decoded
  together share the engine, so a request's wall time is divided by how many shared it;
- cache: nothing.
The baseline prices the same tokens on the reference cloud model (cache misses, unless the
request went to that model and got hits). Money is integer nano-USD, so sums are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from thrifty.backends import Registry, Target
from thrifty.config import CostSettings
from thrifty.context import RequestContext
from thrifty.costs.money import convert_nanos
from thrifty.costs.pricebook import PriceBook
from thrifty.costs.usage import TokenUsage


class Meter:
    def __init__(self, settings: CostSettings, prices: PriceBook, registry: Registry) -> None:
        self.prices = prices
        self.baseline_model = settings.baseline_model
        self.local_cost = settings.local
        self.fully_loaded = settings.local_basis == "fully_loaded"
        self.cny_per_usd = Decimal(str(settings.cny_per_usd))
        self.registry = registry

    def price(self, ctx: RequestContext) -> None:
        """Set the request's cost and its all-cloud baseline from its usage."""
        if ctx.usage is None:
            ctx.cost_nanos = 0 if ctx.status >= 400 else None
            return
        usage = TokenUsage.from_openai(ctx.usage)
        at = datetime.fromtimestamp(ctx.received_at, UTC)
        target = ctx.answered_by
        if ctx.route == "cache":
            ctx.cost_nanos = 0
        elif target is not None and target.upstream is None:
            ctx.cost_nanos = self._local_nanos(ctx)
        elif target is not None:
            ctx.cost_nanos = self._usd_nanos(target.model, usage, at)
        if ctx.cost_nanos is not None:
            ctx.cost_nanos += self._discarded_nanos(ctx)
        if not self._same_offering(target, at):
            # another model's prompt-cache hits say nothing of the baseline's
            usage = TokenUsage(usage.prompt_tokens, usage.completion_tokens)
        ctx.baseline_nanos = self._usd_nanos(self.baseline_model, usage, at)

    def _discarded_nanos(self, ctx: RequestContext) -> int:
        """Local answers that were thrown away (a cascade's failed check) still took engine time:
        every successful attempt but the last is charged too."""
        answered = [a for a in ctx.attempts if a.status == 200]
        local = [a for a in answered[:-1] if a.upstream is None]
        nanos = sum(self.local_cost.cost_nanos(a.latency_s, self.fully_loaded) for a in local)
        if nanos == 0 or self.local_cost.currency == "USD":
            return nanos
        return convert_nanos(nanos, self.local_cost.currency, "USD", cny_per_usd=self.cny_per_usd)

    def _same_offering(self, target: Target | None, at: datetime) -> bool:
        """The answering model is the baseline, or an alias priced exactly like it then (as
        deepseek-chat is V4-Flash): its prompt-cache hits would have been the baseline's too."""
        if target is None or target.upstream is None:
            return False
        if target.model == self.baseline_model:
            return True
        rates = self.prices.price_at(target.model, at)
        return rates is not None and rates == self.prices.price_at(self.baseline_model, at)

    def _usd_nanos(self, model: str, usage: TokenUsage, at: datetime) -> int | None:
        nanos = self.prices.cost_nanos(model, usage, at)
        if nanos is None:
            return None
        currency = self.prices.currency(model)
        if currency == "USD":
            return nanos
        return convert_nanos(nanos, currency, "USD", cny_per_usd=self.cny_per_usd)

    def _local_nanos(self, ctx: RequestContext) -> int:
        # the engine's busy time, shared by the requests it decoded together: each local model
        # is charged for its own engine's time (`thrifty usage --by model` shows it per model)
        engine = ctx.answered_by.backend if ctx.answered_by is not None else None
        in_flight = getattr(engine, "in_flight", 0)
        parallel = getattr(engine, "parallel", 1)
        sharing = max(1, min(in_flight + 1, parallel))
        nanos = self.local_cost.cost_nanos(ctx.latency_s / sharing, fully_loaded=self.fully_loaded)
        if self.local_cost.currency == "USD":
            return nanos
        return convert_nanos(nanos, self.local_cost.currency, "USD", cny_per_usd=self.cny_per_usd)
