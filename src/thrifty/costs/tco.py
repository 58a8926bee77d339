"""Local vs cloud vs hybrid over N years: the numbers behind `thrifty tco`.

The model, kept simple enough to check by hand:

- Traffic in year y is ``requests_per_day × (1 + yearly_growth)^y``, flat within the year.
- **cloud** pays tokens only: per request, input tokens split into cache hits and misses, plus
  output tokens, at the PriceBook's rates (blended with the discount window by ``off_peak_share``).
- **local** owns enough machines for all traffic (at least one); each machine costs straight-line
  depreciation and its power around the clock (``power_watts`` × 24 h); ops staff is one cost
  for the deployment, however many machines. Machines are never sold back when traffic falls.
- **hybrid** owns machines for ``hybrid_local_share`` of the traffic and pays the cloud for
  the rest.

Every machine-related line is multiplied by ``local.share``. Days are 1/365 of a year. Totals
accrue depreciation; the cumulative curves for the plot are cash: a machine is paid for when it
is bought (and again when it is written off), so local starts high and the cloud catches up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import ROUND_CEILING, Decimal

from .money import convert, format_amount
from .pricebook import PriceBook, Rates
from .score import Score, economics_points, score
from .tco_config import TcoConfig

SCENARIOS = ("local", "cloud", "hybrid")
DAYS_PER_YEAR = 365
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class UnitCosts:
    """The prices the projection multiplies, in the report's currency."""

    depreciation_per_machine_day: Decimal
    power_per_machine_day: Decimal
    ops_per_day: Decimal
    cloud_per_request: Decimal
    capacity: Decimal | None  # requests a day per machine; None: unlimited
    rates: Rates  # the cloud model's standard rates, in the price table's currency

    @property
    def machine_per_day(self) -> Decimal:
        return self.depreciation_per_machine_day + self.power_per_machine_day

    def machines_for(self, requests_per_day: Decimal) -> int:
        """Machines needed to serve ``requests_per_day`` locally (at least one)."""
        if self.capacity is None:
            return 1
        needed = (requests_per_day / self.capacity).to_integral_value(rounding=ROUND_CEILING)
        return max(1, int(needed))


@dataclass(frozen=True, slots=True)
class DayCost:
    """One day's cost lines of one scenario."""

    machines: int
    depreciation: Decimal
    power: Decimal
    ops: Decimal
    cloud_tokens: Decimal

    @property
    def total(self) -> Decimal:
        return self.depreciation + self.power + self.ops + self.cloud_tokens


@dataclass(frozen=True, slots=True)
class Projection:
    """Everything `thrifty tco` reports; amounts in ``currency``."""

    config: TcoConfig
    currency: str
    price_date: date
    unit: UnitCosts
    requests_per_day: list[Decimal]  # by year
    per_day: list[dict[str, DayCost]]  # by year, then scenario
    totals: dict[str, Decimal]  # by scenario, over the horizon
    break_even_requests_per_day: Decimal | None  # None: local never matches the cloud
    cumulative: dict[str, list[Decimal]]  # cash spent by the end of month 0..12·years
    payback_month: int | None  # first month local's cumulative spend is at or below cloud's
    score: Score
    recommendation: str


def _request_cost(
    rates: Rates, input_tokens: int, output_tokens: int, hit_share: Decimal
) -> Decimal:
    hits = input_tokens * hit_share
    misses = input_tokens - hits
    return (
        hits * rates.input_cache_hit
        + misses * rates.input_cache_miss
        + output_tokens * rates.output
    ) / _MILLION


def unit_costs(config: TcoConfig, book: PriceBook, price_date: date) -> UnitCosts:
    """Per-machine, per-deployment and per-request prices, converted to the report's currency."""
    cloud, traffic, local = config.cloud, config.traffic, config.local
    tariff = book.tariff_at(cloud.model, datetime.combine(price_date, time(12), tzinfo=UTC))
    if tariff is None:
        raise ValueError(f"no prices for {cloud.model!r} on {price_date}; add them under prices:")
    per_request = _request_cost(
        tariff.base, traffic.input_tokens, traffic.output_tokens, traffic.cache_hit_share
    )
    if cloud.off_peak_share:
        if not tariff.windows:
            raise ValueError(
                f"{cloud.model} has no discount window on {price_date}; set off_peak_share to 0"
            )
        off_peak = _request_cost(
            tariff.windows[0].rates,
            traffic.input_tokens,
            traffic.output_tokens,
            traffic.cache_hit_share,
        )
        per_request += cloud.off_peak_share * (off_peak - per_request)

    def mine(amount: Decimal, source: str) -> Decimal:
        return convert(amount, source, config.currency, cny_per_usd=config.cny_per_usd)

    year = Decimal(DAYS_PER_YEAR)
    kwh_per_day = local.power_watts * 24 / 1000
    return UnitCosts(
        depreciation_per_machine_day=mine(
            local.hardware_price * local.share / local.depreciation_years / year, local.currency
        ),
        power_per_machine_day=mine(
            kwh_per_day * local.electricity_per_kwh * local.share, local.currency
        ),
        ops_per_day=mine(local.ops_per_year * local.share / year, local.currency),
        cloud_per_request=mine(per_request, tariff.base.currency),
        capacity=local.capacity_requests_per_day,
        rates=tariff.base,
    )


def break_even(unit: UnitCosts) -> Decimal | None:
    """Requests a day at which all-local costs as much per day as all-cloud.

    With n machines local costs ``n·M + O`` a day against ``r·c`` for the cloud, so the answer is
    ``r = (n·M + O) / c`` for the fewest machines n that can serve r. If one machine costs more than
    its full capacity would in the cloud (``M ≥ capacity·c``), local never catches up: None.
    """
    fixed, per_machine, per_request = unit.ops_per_day, unit.machine_per_day, unit.cloud_per_request
    if per_request <= 0:
        return None
    if unit.capacity is None:
        return (per_machine + fixed) / per_request
    if per_machine >= unit.capacity * per_request:
        return None
    machines = 1
    while True:  # ends: each machine adds less than its capacity's worth of cloud cost
        requests = (machines * per_machine + fixed) / per_request
        if requests <= machines * unit.capacity:
            return requests
        machines += 1


def _day(unit: UnitCosts, machines: int, cloud_requests: Decimal) -> DayCost:
    return DayCost(
        machines=machines,
        depreciation=machines * unit.depreciation_per_machine_day,
        power=machines * unit.power_per_machine_day,
        ops=unit.ops_per_day if machines else Decimal(0),
        cloud_tokens=cloud_requests * unit.cloud_per_request,
    )


def _per_day(
    config: TcoConfig, unit: UnitCosts, traffic: list[Decimal]
) -> list[dict[str, DayCost]]:
    share = config.traffic.hybrid_local_share
    owned = {"local": 0, "hybrid": 0}  # machines are kept when traffic falls
    years = []
    for requests in traffic:
        owned["local"] = max(owned["local"], unit.machines_for(requests))
        if share:
            owned["hybrid"] = max(owned["hybrid"], unit.machines_for(requests * share))
        years.append(
            {
                "local": _day(unit, owned["local"], Decimal(0)),
                "cloud": _day(unit, 0, requests),
                "hybrid": _day(unit, owned["hybrid"], requests * (1 - share)),
            }
        )
    return years


def _cash(config: TcoConfig, unit: UnitCosts, days: list[DayCost]) -> list[Decimal]:
    """Cumulative cash at the end of each month; machines are paid for when bought."""
    price = convert(
        config.local.hardware_price * config.local.share,
        config.local.currency,
        config.currency,
        cny_per_usd=config.cny_per_usd,
    )
    lifetime = max(1, round(config.local.depreciation_years * 12))  # months until replaced
    month_days = Decimal(DAYS_PER_YEAR) / 12
    bought: dict[int, int] = {}  # month → machines bought then
    owned, spent = 0, Decimal(0)
    curve = []
    for month in range(12 * len(days) + 1):
        if month:  # running costs of the month just ended
            day = days[(month - 1) // 12]
            spent += (day.power + day.ops + day.cloud_tokens) * month_days
        if month < 12 * len(days):
            purchase = bought.get(month - lifetime, 0)  # replacements
            if month % 12 == 0:
                purchase += max(0, days[month // 12].machines - owned)
                owned = max(owned, days[month // 12].machines)
            if purchase:
                bought[month] = purchase
                spent += purchase * price
        curve.append(spent)
    return curve


def _payback(local: list[Decimal], cloud: list[Decimal]) -> int | None:
    for month, (mine, theirs) in enumerate(zip(local, cloud, strict=True)):
        if mine <= theirs:
            return month
    return None


def _recommend(p: Projection) -> str:
    cur, years = p.currency, p.config.years
    best = min(("local", "hybrid"), key=lambda name: p.totals[name])
    verdict = {
        "go": f"move to {best}",
        "pilot": (
            f"pilot hybrid: send {p.config.traffic.hybrid_local_share:.0%} of requests to the local"
            " model and measure quality and cost before buying more"
        ),
        "stay": "stay on the cloud",
    }[p.score.verdict]
    costs = ", ".join(f"{name} {format_amount(p.totals[name], cur)}" for name in SCENARIOS)
    cheapest = min(SCENARIOS, key=lambda name: p.totals[name])
    if p.break_even_requests_per_day is None:
        even = "local never breaks even at these prices"
    else:
        even = (
            f"all-local breaks even at {p.break_even_requests_per_day:,.0f} requests/day "
            f"(year 1 traffic: {p.requests_per_day[0]:,.0f})"
        )
    return (
        f"Recommendation: {verdict} (score {p.score.total:.1f}/10). Over {years} years {costs}; "
        f"{cheapest} is cheapest, and {even}."
    )


def project(config: TcoConfig, book: PriceBook, today: date | None = None) -> Projection:
    """Run the projection; ``today`` picks the prices when the config names no date."""
    price_date = config.cloud.price_date or today or datetime.now(UTC).date()
    unit = unit_costs(config, book, price_date)
    growth = 1 + config.traffic.yearly_growth
    traffic = [config.traffic.requests_per_day * growth**year for year in range(config.years)]
    per_day = _per_day(config, unit, traffic)
    totals = {
        name: sum((year[name].total * DAYS_PER_YEAR for year in per_day), Decimal(0))
        for name in SCENARIOS
    }
    cumulative = {name: _cash(config, unit, [year[name] for year in per_day]) for name in SCENARIOS}
    economics = economics_points(totals["cloud"], min(totals["local"], totals["hybrid"]))
    projection = Projection(
        config=config,
        currency=config.currency,
        price_date=price_date,
        unit=unit,
        requests_per_day=traffic,
        per_day=per_day,
        totals=totals,
        break_even_requests_per_day=break_even(unit),
        cumulative=cumulative,
        payback_month=_payback(cumulative["local"], cumulative["cloud"]),
        score=score(config.score, economics),
        recommendation="",  # written from the finished projection, below
    )
    return replace(projection, recommendation=_recommend(projection))
