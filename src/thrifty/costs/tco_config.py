"""The input of `thrifty tco`: the machine, the cloud model, the traffic and the score.

One pydantic model, read from a YAML file (see examples/tco.yaml); every field has a default, so
an empty file describes a small local box against deepseek-chat at 1,000 requests a day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .local import LocalCost
from .score import ScoreConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalMachine(LocalCost):
    """`LocalCost` plus what only the projection needs."""

    capacity_requests_per_day: Decimal | None = Field(
        default=None,
        gt=0,
        description="Requests a day one machine can serve at the traffic's token sizes; more "
        "traffic buys more machines (depreciation and power scale, ops does not). "
        "Default: unlimited, one machine.",
    )


class Cloud(_Section):
    """The cloud model priced from the PriceBook."""

    model: str = Field(default="deepseek-chat", description="Model name in the price tables.")
    price_date: date | None = Field(
        default=None,
        description="Take the prices in force at 12:00 UTC on this date (default: today).",
    )
    off_peak_share: Decimal = Field(
        default=Decimal(0),
        ge=0,
        le=1,
        description="Share of requests sent in the provider's discount window (the period's "
        "first window), 0–1. Default 0: all at standard prices.",
    )


class Traffic(_Section):
    """What the gateway serves, as of the first year."""

    requests_per_day: Decimal = Field(default=Decimal(1000), ge=0, description="Year-1 traffic.")
    input_tokens: int = Field(default=1000, ge=0, description="Prompt tokens per request.")
    output_tokens: int = Field(default=300, ge=0, description="Completion tokens per request.")
    cache_hit_share: Decimal = Field(
        default=Decimal(0),
        ge=0,
        le=1,
        description="Share of prompt tokens the provider bills as cache hits, 0–1.",
    )
    yearly_growth: Decimal = Field(
        default=Decimal(0), gt=-1, description="Traffic growth per year: 0.5 is +50% a year."
    )
    hybrid_local_share: Decimal = Field(
        default=Decimal("0.7"),
        ge=0,
        le=1,
        description="In the hybrid scenario, share of requests the local model answers, 0–1.",
    )


class TcoConfig(_Section):
    """Local vs cloud vs hybrid over ``years``."""

    years: int = Field(default=3, ge=1, le=30, description="Horizon of the projection, years.")
    currency: Literal["USD", "CNY"] = Field(default="USD", description="Currency of the report.")
    cny_per_usd: Decimal = Field(default=Decimal("7.2"), gt=0, description="Exchange rate.")
    local: LocalMachine = Field(default_factory=LocalMachine)
    cloud: Cloud = Field(default_factory=Cloud)
    traffic: Traffic = Field(default_factory=Traffic)
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    prices: Mapping[str, Any] | None = Field(
        default=None, description="Extra price rows, as `prices:` in thrifty.yaml."
    )
