"""`thrifty tco`'s output: a plain-text table for people, JSON for scripts."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from .money import format_amount
from .tco import DAYS_PER_YEAR, SCENARIOS, DayCost, Projection

_LINES = ("depreciation", "power", "ops", "cloud_tokens")
_COLUMN = 14


def _amount(value: Decimal, places: int = 2) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):,}"


def _row(label: str, cells: list[str]) -> str:
    return f"  {label:<20}" + "".join(f"{cell:>{_COLUMN}}" for cell in cells)


def _header(title: str) -> str:
    return f"{title:<22}" + "".join(f"{name:>{_COLUMN}}" for name in SCENARIOS)


def render_table(p: Projection) -> str:
    """The projection as aligned text, amounts in the report's currency."""
    cfg, unit, cur = p.config, p.unit, p.currency
    rates = unit.rates
    traffic = cfg.traffic
    lines = [
        f"thrifty tco: {cfg.years} years, amounts in {cur} ({cfg.cny_per_usd} CNY/USD)",
        f"  cloud: {cfg.cloud.model} prices of {p.price_date}: {rates.input_cache_hit} / "
        f"{rates.input_cache_miss} / {rates.output} {rates.currency} per 1M tokens "
        f"(input cache hit / miss / output), {cfg.cloud.off_peak_share:.0%} off-peak "
        f"→ {format_amount(unit.cloud_per_request, cur, 6)} per request",
        f"  traffic: {traffic.requests_per_day:,.0f} requests/day in year 1, "
        f"{traffic.yearly_growth:+.0%}/year; {traffic.input_tokens:,} in + "
        f"{traffic.output_tokens:,} out tokens, {traffic.cache_hit_share:.0%} cache hits; "
        f"hybrid answers {traffic.hybrid_local_share:.0%} locally",
        "",
        _header("Per day, year 1"),
    ]
    first: dict[str, DayCost] = p.per_day[0]
    lines.append(_row("machines", [str(first[name].machines) for name in SCENARIOS]))
    for line in _LINES:
        label = line.replace("_", " ")
        lines.append(_row(label, [_amount(getattr(first[name], line)) for name in SCENARIOS]))
    lines.append(_row("total", [_amount(first[name].total) for name in SCENARIOS]))
    lines += ["", _header("Total by year")]
    for year, (requests, costs) in enumerate(zip(p.requests_per_day, p.per_day, strict=True)):
        label = f"year {year + 1} ({requests:,.0f}/d)"
        lines.append(
            _row(label, [_amount(costs[name].total * DAYS_PER_YEAR) for name in SCENARIOS])
        )
    lines.append(_row(f"{cfg.years} years", [_amount(p.totals[name]) for name in SCENARIOS]))
    lines.append("")
    if p.break_even_requests_per_day is None:
        lines.append("Break-even traffic: none (one machine costs more than its capacity in cloud)")
    else:
        lines.append(
            f"Break-even traffic: {p.break_even_requests_per_day:,.0f} requests/day "
            "(all-local costs as much per day as all-cloud)"
        )
    if p.payback_month is None:
        lines.append(f"Payback: local's cumulative spend stays above cloud's for {cfg.years} years")
    else:
        lines.append(f"Payback: local's cumulative spend meets cloud's in month {p.payback_month}")
    weights, score = cfg.score.weights, p.score
    lines += [
        "",
        f"{'Score (0–10)':<22}{'weight':>8}{'score':>8}",
        f"  {'feasibility':<20}{weights.feasibility:>8.0%}{score.feasibility:>8.1f}",
        f"  {'economics':<20}{weights.economics:>8.0%}{score.economics:>8.1f}",
        f"  {'urgency':<20}{weights.urgency:>8.0%}{score.urgency:>8.1f}",
        f"  {'total':<20}{'':>8}{score.total:>8.1f}  → {score.verdict}",
        "",
        p.recommendation,
    ]
    return "\n".join(lines)


def _num(value: Decimal, places: int = 2) -> float:
    return float(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def _day(cost: DayCost) -> dict[str, Any]:
    out: dict[str, Any] = {"machines": cost.machines}
    out.update({line: _num(getattr(cost, line)) for line in _LINES})
    out["total"] = _num(cost.total)
    return out


def as_dict(p: Projection) -> dict[str, Any]:
    """The projection as JSON-ready data; amounts rounded to cents of ``currency``."""
    rates = p.unit.rates
    return {
        "currency": p.currency,
        "years": p.config.years,
        "cny_per_usd": str(p.config.cny_per_usd),
        "cloud": {
            "model": p.config.cloud.model,
            "price_date": p.price_date.isoformat(),
            "rates_per_million": {
                "currency": rates.currency,
                "input_cache_hit": str(rates.input_cache_hit),
                "input_cache_miss": str(rates.input_cache_miss),
                "output": str(rates.output),
            },
            "cost_per_request": _num(p.unit.cloud_per_request, 9),
        },
        "per_day": [
            {"year": year + 1, "requests_per_day": _num(requests)}
            | {name: _day(costs[name]) for name in SCENARIOS}
            for year, (requests, costs) in enumerate(
                zip(p.requests_per_day, p.per_day, strict=True)
            )
        ],
        "totals": {name: _num(p.totals[name]) for name in SCENARIOS},
        "break_even_requests_per_day": (
            None if p.break_even_requests_per_day is None else _num(p.break_even_requests_per_day)
        ),
        "payback_month": p.payback_month,
        "score": p.score.model_dump() | {"weights": p.config.score.weights.model_dump()},
        "recommendation": p.recommendation,
    }


def render_json(p: Projection) -> str:
    return json.dumps(as_dict(p), indent=2, ensure_ascii=False)
