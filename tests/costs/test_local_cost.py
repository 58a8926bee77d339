"""Local cost per engine-busy second, marginal and fully loaded."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from thrifty.costs.local import LocalCost


@pytest.fixture
def machine() -> LocalCost:
    # power: 100 W × 0.36 per kWh / 3,600,000 J per kWh = 0.00001 per second = 10,000 nanos/s
    # fixed: (63,072 / 2 years + 31,536 ops) × share 0.5 = 31,536 per year, spread over
    #        utilization 0.5 × 31,536,000 s = 15,768,000 busy seconds → 0.002/s = 2,000,000 nanos/s
    return LocalCost(
        hardware_price=Decimal(63_072),
        depreciation_years=Decimal(2),
        power_watts=Decimal(100),
        electricity_per_kwh=Decimal("0.36"),
        ops_per_year=Decimal(31_536),
        share=Decimal("0.5"),
        utilization=Decimal("0.5"),
    )


def test_rates_per_busy_second(machine: LocalCost) -> None:
    assert machine.marginal_per_second == Decimal("0.00001")
    assert machine.fixed_per_year == Decimal(31_536)
    assert machine.fully_loaded_per_second == Decimal("0.00201")


def test_cost_nanos(machine: LocalCost) -> None:
    assert machine.cost_nanos(1.5, fully_loaded=False) == 15_000  # 1.5 × 10,000
    assert machine.cost_nanos(1.5, fully_loaded=True) == 3_015_000  # 1.5 × 2,010,000
    assert machine.cost_nanos(0.25, fully_loaded=True) == 502_500  # 0.25 × 2,010,000
    assert machine.cost_nanos(0.0, fully_loaded=True) == 0
    assert machine.cost_nanos(0.00004, fully_loaded=False) == 0  # 0.4 nano
    assert machine.cost_nanos(0.00006, fully_loaded=False) == 1  # 0.6 nano


def test_negative_time_is_refused(machine: LocalCost) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        machine.cost_nanos(-0.1, fully_loaded=False)


def test_defaults_describe_a_small_box() -> None:
    box = LocalCost()
    assert box.currency == "USD"
    # 65 W × 0.15 / 3.6e6 ≈ 2.7 µ$ a second: about a cent an hour
    assert Decimal("0.000002") < box.marginal_per_second < Decimal("0.000003")
    assert box.fully_loaded_per_second > box.marginal_per_second


@pytest.mark.parametrize(
    "bad",
    [
        {"share": 1.5},
        {"utilization": 0},
        {"depreciation_years": 0},
        {"currency": "EUR"},
        {"power_wats": 10},
    ],
)
def test_invalid_fields(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LocalCost.model_validate(bad)
