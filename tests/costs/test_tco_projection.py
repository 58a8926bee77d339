"""`thrifty tco`'s numbers on a config small enough to check by hand.

The machine: 7,300 USD over 2 years = 10.00 a day; 500 W × 24 h = 12 kWh × 0.20 = 2.40 a day;
ops 3,650 a year = 10.00 a day. The cloud model: 1.00 / 2.00 / 4.00 USD per 1M tokens (hit / miss
/ output); a request of 1,000 prompt tokens, half cached, and 500 output tokens costs
(500×1 + 500×2 + 500×4) / 1M = 0.0035.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from thrifty.costs.pricebook import PriceBook
from thrifty.costs.score import ScoreConfig, economics_points
from thrifty.costs.tco import break_even, project
from thrifty.costs.tco_config import TcoConfig

PRICES = {
    "test-model": [
        {
            "effective_from": "2025-01-01",
            "currency": "USD",
            "input_cache_hit": 1,
            "input_cache_miss": 2,
            "output": 4,
            "windows": [
                {
                    "name": "night",
                    "start": "22:00",
                    "end": "06:00",
                    "input_cache_hit": 0.5,
                    "input_cache_miss": 1,
                    "output": 2,
                },
            ],
        }
    ]
}


def small_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "years": 2,
        "currency": "USD",
        "local": {
            "hardware_price": 7300,
            "depreciation_years": 2,
            "power_watts": 500,
            "electricity_per_kwh": 0.2,
            "ops_per_year": 3650,
            "currency": "USD",
        },
        "cloud": {"model": "test-model", "price_date": "2025-06-01"},
        "traffic": {
            "requests_per_day": 1000,
            "input_tokens": 1000,
            "output_tokens": 500,
            "cache_hit_share": 0.5,
            "yearly_growth": 1.0,
            "hybrid_local_share": 0.5,
        },
        "score": {"feasibility": {"quality": 8, "skills": 6}, "urgency": {"pressure": 4}},
        "prices": PRICES,
    }
    for section, values in changes.items():
        if isinstance(values, dict):
            config[section] = {**config[section], **values}
        else:
            config[section] = values
    return config


def run(**changes: Any) -> Any:
    config = TcoConfig.model_validate(small_config(**changes))
    return project(config, PriceBook.load(config.prices))


def test_per_day_lines_year_one() -> None:
    p = run()
    assert p.unit.cloud_per_request == Decimal("0.0035")
    local, cloud, hybrid = (p.per_day[0][name] for name in ("local", "cloud", "hybrid"))
    assert local.depreciation == Decimal("10.00")  # 7,300 / 2 / 365
    assert local.power == Decimal("2.40")  # 0.5 kW × 24 h × 0.20
    assert local.ops == Decimal("10.00")  # 3,650 / 365
    assert local.cloud_tokens == 0
    assert local.total == Decimal("22.40")
    assert (cloud.machines, cloud.total) == (0, Decimal("3.50"))  # 1,000 × 0.0035
    # one machine plus the cloud half: 22.40 + 500 × 0.0035 = 22.40 + 1.75
    assert hybrid.total == Decimal("24.15")


def test_growth_and_totals() -> None:
    p = run()
    assert p.requests_per_day == [1000, 2000]  # +100% a year
    assert p.per_day[1]["cloud"].total == Decimal("7.00")
    assert p.totals["local"] == Decimal("16352.0")  # 22.40 × 365 × 2
    assert p.totals["cloud"] == Decimal("3832.5")  # (3.50 + 7.00) × 365
    assert p.totals["hybrid"] == Decimal("18268.25")  # (24.15 + 22.40 + 3.50) × 365


def test_break_even_without_capacity_limit() -> None:
    p = run()
    # (10 + 2.40 + 10) / 0.0035 = 22.40 / 0.0035
    assert p.break_even_requests_per_day == Decimal(6400)


def test_break_even_buys_machines_for_capacity() -> None:
    p = run(local={"capacity_requests_per_day": 4000})
    # n machines serve up to 4,000·n; (12.40·n + 10) / 0.0035 ≤ 4,000·n ⇔ 10 ≤ 1.6·n ⇔ n ≥ 7:
    # (7 × 12.40 + 10) / 0.0035 = 96.80 / 0.0035 = 27,657.142857…
    assert p.break_even_requests_per_day is not None
    assert round(p.break_even_requests_per_day, 2) == Decimal("27657.14")


def test_no_break_even_when_a_machine_outcosts_its_capacity() -> None:
    # one machine a day 12.40 ≥ 1,000 requests × 0.0035 = 3.50: more traffic never helps
    assert run(local={"capacity_requests_per_day": 1000}).break_even_requests_per_day is None
    assert break_even(run().unit) == Decimal(6400)


def test_capacity_adds_machines_as_traffic_grows() -> None:
    p = run(local={"capacity_requests_per_day": 1500})
    assert [year["local"].machines for year in p.per_day] == [1, 2]  # 1,000 then 2,000 a day
    assert [year["hybrid"].machines for year in p.per_day] == [1, 1]  # 500 then 1,000 locally
    assert p.per_day[1]["local"].total == Decimal("34.80")  # 2 × 12.40 + 10 (ops once)


def test_off_peak_share_blends_the_window_rates() -> None:
    p = run(cloud={"off_peak_share": 0.5})
    # night: (500×0.5 + 500×1 + 500×2) / 1M = 0.00175; half and half: (0.0035 + 0.00175) / 2
    assert p.unit.cloud_per_request == Decimal("0.002625")


def test_currency_conversion() -> None:
    p = run(currency="CNY", cny_per_usd=Decimal(7))
    assert p.per_day[0]["cloud"].total == Decimal("24.5")  # 3.50 USD × 7
    assert p.per_day[0]["local"].depreciation == Decimal(70)  # 10 USD × 7


def test_cash_curve_and_payback() -> None:
    p = run(traffic={"requests_per_day": 10_000, "yearly_growth": 0})
    local, cloud = p.cumulative["local"], p.cumulative["cloud"]
    assert local[0] == 7300 and cloud[0] == 0  # the machine is paid for up front
    # a month is 365/12 days; local runs 12.40 a day, cloud 35.00:
    # month 10: 7,300 + 12.40 × 304.17 = 11,071.67 > 35 × 304.17 = 10,645.83
    # month 11: 7,300 + 12.40 × 334.58 = 11,448.83 ≤ 35 × 334.58 = 11,710.42
    assert round(local[10], 2) == Decimal("11071.67") and round(cloud[10], 2) == Decimal("10645.83")
    assert p.payback_month == 11
    # the machine is written off after 24 months, so the horizon ends before a replacement
    assert round(local[24], 2) == Decimal("16352.00")  # 7,300 + 12.40 × 730


def test_replacement_is_bought_after_depreciation() -> None:
    p = run(years=3)
    local = p.cumulative["local"]
    # month 24 (start of year 3) buys the second machine: the curve jumps by 7,300
    month_of_running = Decimal("12.40") * 365 / 12
    assert round(local[24] - local[23] - month_of_running, 2) == Decimal("7300.00")


def test_score_and_recommendation() -> None:
    p = run()
    # feasibility (8 + 6) / 2 = 7; urgency 4; economics: local and hybrid cost far more than
    # cloud, clamped to 0. Total 0.3 × 7 + 0.4 × 0 + 0.3 × 4 = 3.3 → stay.
    assert (p.score.feasibility, p.score.economics, p.score.urgency) == (7, 0, 4)
    assert p.score.total == pytest.approx(3.3)
    assert p.score.verdict == "stay"
    assert p.recommendation.startswith("Recommendation: stay on the cloud (score 3.3/10).")
    assert "all-local breaks even at 6,400 requests/day" in p.recommendation


def test_economics_points() -> None:
    assert economics_points(Decimal(100), Decimal(80)) == pytest.approx(7.0)  # 20% saved
    assert economics_points(Decimal(100), Decimal(100)) == 5.0
    assert economics_points(Decimal(100), Decimal(160)) == 0.0  # clamped
    assert economics_points(Decimal(100), Decimal(0)) == 10.0  # clamped


def test_weights_must_sum_to_one() -> None:
    with pytest.raises(ValidationError, match="weights must sum to 1"):
        ScoreConfig.model_validate({"weights": {"feasibility": 0.3, "economics": 0.5}})


def test_unpriced_model_is_an_error() -> None:
    config = TcoConfig.model_validate(small_config(cloud={"model": "nope"}))
    with pytest.raises(ValueError, match="no prices for 'nope'"):
        project(config, PriceBook.load(config.prices), today=date(2025, 6, 1))
