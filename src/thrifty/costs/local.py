"""What a second of local inference costs, from the machine's total cost of ownership.

Two prices per engine-busy second, for two questions:

- **marginal**: the electricity the engine draws while busy. What one more local request costs
  once the machine is bought and staffed: the figure for routing decisions.
- **fully loaded**: marginal plus the machine's depreciation and its ops staff, times the share of
  the machine thrifty gets, spread over the seconds it is busy (``utilization`` of the year).
  What local answers cost on average: the figure for savings reports and for `thrifty tco`.

A year is 365 days. All money is in `LocalCost.currency`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .money import CURRENCIES, NANOS

SECONDS_PER_YEAR = 365 * 24 * 3600


class LocalCost(BaseModel):
    """The machine that runs the local model, and how much of it thrifty uses.

    Defaults describe a small server or a workstation-class laptop running a small model on CPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hardware_price: Decimal = Field(
        default=Decimal(2000),
        ge=0,
        description="Purchase price of the machine (default: a 2,000 USD small server/laptop).",
    )
    depreciation_years: Decimal = Field(
        default=Decimal(3),
        gt=0,
        description="Years over which the hardware is written off, straight-line (default 3).",
    )
    power_watts: Decimal = Field(
        default=Decimal(65),
        ge=0,
        description="Power the machine draws while the engine is busy, in watts (default 65 W: "
        "a small server or laptop with its CPU under load; a single-GPU server draws 300–700 W).",
    )
    electricity_per_kwh: Decimal = Field(
        default=Decimal("0.15"),
        ge=0,
        description="Price of one kWh of electricity (default 0.15, a typical USD tariff).",
    )
    ops_per_year: Decimal = Field(
        default=Decimal(0),
        ge=0,
        description="Staff cost per year of running the machine: on-call, upgrades, repairs "
        "(default 0: a laptop or a box someone looks after on the side).",
    )
    share: Decimal = Field(
        default=Decimal(1),
        ge=0,
        le=1,
        description="Share of the machine's depreciation and ops that thrifty's local model "
        "bears, 0–1 (default 1: the machine serves thrifty alone).",
    )
    currency: str = Field(default="USD", description="Currency of every amount here: USD or CNY.")
    utilization: Decimal = Field(
        default=Decimal("0.25"),
        gt=0,
        le=1,
        description="Expected share of the year the engine is busy, 0–1 (default 0.25, about six "
        "busy hours a day): fixed costs are spread over that many busy seconds.",
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.upper()
        if value not in CURRENCIES:
            raise ValueError(f"currency must be one of {', '.join(CURRENCIES)}, got {value!r}")
        return value

    @cached_property
    def marginal_per_second(self) -> Decimal:
        """Electricity for one busy second: W × price per kWh / 3.6e6 J per kWh."""
        return self.power_watts * self.electricity_per_kwh / Decimal(3_600_000)

    @cached_property
    def fixed_per_year(self) -> Decimal:
        """Depreciation plus ops for a year, times thrifty's share of the machine."""
        return (self.hardware_price / self.depreciation_years + self.ops_per_year) * self.share

    @cached_property
    def fully_loaded_per_second(self) -> Decimal:
        """Marginal plus the fixed costs spread over the year's busy seconds."""
        busy_seconds = self.utilization * SECONDS_PER_YEAR
        return self.marginal_per_second + self.fixed_per_year / busy_seconds

    def cost_nanos(self, busy_seconds: float, fully_loaded: bool) -> int:
        """Cost of ``busy_seconds`` of engine time, in nano-units of `currency`."""
        if busy_seconds < 0:
            raise ValueError(f"busy_seconds must be non-negative, got {busy_seconds}")
        rate = self.fully_loaded_per_second if fully_loaded else self.marginal_per_second
        # Decimal(float) is exact, so the only rounding is the final one.
        nanos = Decimal(busy_seconds) * rate * NANOS
        return int(nanos.to_integral_value(rounding=ROUND_HALF_EVEN))
