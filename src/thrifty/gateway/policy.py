"""Cost-aware choice: the cheapest candidate whose predicted quality meets the bar.

For each candidate target the router prices *this* request before calling anything:

- tokens: the prompt's estimate, and an expected answer of ``router.expected_output_tokens``
  (never more than the request's ``max_tokens``);
- cloud: the price table in force now (windows included) with ``router.cloud_cache_hit_share`` of
  the prompt billed at the cache-hit price;
- local: the engine seconds those tokens take (``local_prefill_tps``, and ``local_decode_tps`` or,
  once this gateway has seen a few local answers, their measured speed) at the machine's price
  per busy second, on ``router.cost_basis`` (marginal by default: the machine is
  paid for whether it answers or not; reports keep ``costs.local_basis``).

`choose` then keeps the candidates whose P(good enough) is at least ``quality_target`` times the
best candidate's, and takes the cheapest of them (ties: the better, then the order written). When
none qualifies the best is taken. So the winner is never both dearer and worse than another
candidate: anything cheaper missed the bar, which the winner meets or is the best at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from thrifty.backends import Target
from thrifty.config import CostSettings, RouterSettings
from thrifty.costs.money import convert_nanos
from thrifty.costs.pricebook import PriceBook

logger = logging.getLogger(__name__)

_WARMUP = 5  # local answers seen before the measured speed replaces the configured one
_ALPHA = 0.1  # weight of each new answer in the moving average
TYPICAL_PROMPT_TOKENS = 500  # what "a typical request" means for the start-up comparison
TYPICAL_ANSWER_TOKENS = 200


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str  # as the rule names it
    target: Target
    cost_nanos: int | None  # expected USD nanos of this request; None: unpriced
    p_ok: float  # predicted P(good enough)
    qualifies: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.name,
            "route": self.target.route,
            "expected_cost_usd": None if self.cost_nanos is None else self.cost_nanos / 1e9,
            "p_ok": round(self.p_ok, 4),
            "meets_bar": self.qualifies,
        }


class CostModel:
    """Expected cost of a request on a target, in USD nanos."""

    def __init__(self, router: RouterSettings, costs: CostSettings, prices: PriceBook) -> None:
        self.router = router
        self.prices = prices
        self.local = costs.local
        self.cny_per_usd = Decimal(str(costs.cny_per_usd))
        self.report_basis = costs.local_basis
        self.seconds_per_token = 1.0 / router.local_decode_tps
        self._warmup: list[float] = []

    def observe_local(self, seconds: float, prompt: int, answer: int) -> None:
        """A finished local answer: its engine seconds per answer token, as a moving average
        (the mean of the first few, then each new one weighing _ALPHA)."""
        if not self.router.measure_local_speed or answer <= 0 or seconds <= 0:
            return
        per_token = max(0.0, seconds - prompt / self.router.local_prefill_tps) / answer
        if len(self._warmup) < _WARMUP:
            self._warmup.append(per_token)
            if len(self._warmup) == _WARMUP:
                self.seconds_per_token = sum(self._warmup) / _WARMUP
            return
        self.seconds_per_token += _ALPHA * (per_token - self.seconds_per_token)

    def output_tokens(self, max_tokens: int | None) -> int:
        expected = self.router.expected_output_tokens
        return min(expected, max_tokens) if max_tokens else expected

    def local_nanos(self, prompt: int, answer: int, *, fully_loaded: bool | None = None) -> int:
        seconds = prompt / self.router.local_prefill_tps + answer * self.seconds_per_token
        loaded = self.router.cost_basis == "fully_loaded" if fully_loaded is None else fully_loaded
        nanos = self.local.cost_nanos(seconds, fully_loaded=loaded)
        return self._usd(nanos, self.local.currency)

    def cloud_nanos(self, model: str, prompt: int, answer: int, at: datetime) -> int | None:
        rates = self.prices.price_at(model, at)
        if rates is None:
            return None
        share = Decimal(str(self.router.cloud_cache_hit_share))
        per_m = (
            prompt * (share * rates.input_cache_hit + (1 - share) * rates.input_cache_miss)
            + answer * rates.output
        )
        nanos = int((per_m * 1000).to_integral_value())  # per 1M tokens -> nanos per token
        return self._usd(nanos, rates.currency)

    def nanos(self, target: Target, prompt: int, answer: int, at: datetime) -> int | None:
        if target.upstream is None:
            return self.local_nanos(prompt, answer)
        return self.cloud_nanos(target.model, prompt, answer, at)

    def _usd(self, nanos: int, currency: str) -> int:
        if currency == "USD":
            return nanos
        return convert_nanos(nanos, currency, "USD", cny_per_usd=self.cny_per_usd)

    def warn_if_local_dearer(self, cloud: Target | None) -> str | None:
        """At start: a warning when a typical local request costs more than the cloud's."""
        if cloud is None:
            return None
        at = datetime.now(UTC)
        p, a = TYPICAL_PROMPT_TOKENS, TYPICAL_ANSWER_TOKENS
        cloud_nanos = self.cloud_nanos(cloud.model, p, a, at)
        if cloud_nanos is None:
            return None
        bases = {"routing": self.router.cost_basis, "reports": self.report_basis}
        messages = []
        for use, basis in bases.items():
            local = self.local_nanos(p, a, fully_loaded=basis == "fully_loaded")
            if local > cloud_nanos:
                messages.append(
                    f"{use} ({basis}): a typical request ({p} tokens in, {a} out) costs "
                    f"${local / 1e9:.7f} locally against ${cloud_nanos / 1e9:.7f} on "
                    f"{cloud.route}"
                )
        if not messages:
            return None
        text = (
            "the configured local cost exceeds the cloud's: "
            + "; ".join(messages)
            + " (check costs.local and router.local_*_tps; the router will prefer the cloud "
            "where its quality is as good)"
        )
        logger.warning(text)
        return text


def choose(candidates: list[Candidate], quality_target: float) -> list[Candidate]:
    """The candidates in the order to try: the winner first, then the rest cheapest first."""
    if not candidates:
        return []
    best = max(c.p_ok for c in candidates)
    bar = quality_target * best
    marked = [
        Candidate(c.name, c.target, c.cost_nanos, c.p_ok, c.p_ok >= bar - 1e-12) for c in candidates
    ]
    order = {c.name: i for i, c in enumerate(marked)}

    def price(c: Candidate) -> float:
        return float("inf") if c.cost_nanos is None else float(c.cost_nanos)

    qualified = sorted(
        (c for c in marked if c.qualifies), key=lambda c: (price(c), -c.p_ok, order[c.name])
    )
    # the best always qualifies, unless every p is NaN
    winner = qualified[0] if qualified else max(marked, key=lambda c: (c.p_ok, -price(c)))
    rest = sorted((c for c in marked if c is not winner), key=lambda c: (price(c), order[c.name]))
    return [winner, *rest]


def explain(winner: Candidate, quality_target: float) -> str:
    cost = "unpriced" if winner.cost_nanos is None else f"${winner.cost_nanos / 1e9:.7f}"
    return f"cheapest meeting {quality_target:g}: {winner.name} p={winner.p_ok:.2f} {cost}"
