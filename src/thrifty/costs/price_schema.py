"""The schema of a price table: shipped ``costs/prices/*.yaml`` and ``prices:`` in thrifty.yaml.

Both are one mapping, model name → list of periods::

    deepseek-chat:
      - effective_from: 2025-02-26        # inclusive; a date is 00:00 UTC
        effective_to: 2025-09-05T16:00Z   # exclusive; omit for "until further notice"
        currency: USD
        input_cache_hit: 0.07             # per 1M tokens
        input_cache_miss: 0.27
        output: 1.10
        windows:                          # optional discount (or surcharge) windows, UTC
          - {name: off-peak, start: "16:30", end: "00:30",
             input_cache_hit: 0.035, input_cache_miss: 0.135, output: 0.55}
        source: DeepSeek Models & Pricing # where the figures come from (shown by thrifty prices)
        checked: 2025-03-01               # the day they were last checked against the source
        published_in:                     # optional: the list prices in other currencies, shown
          CNY: {input_cache_hit: 0.5, input_cache_miss: 2, output: 8}   # but never billed

A window may wrap midnight; with ``weekdays`` it applies on the days it *starts* on.
Times without a zone are UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from .money import CURRENCIES

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

Price = Annotated[Decimal, Field(ge=0, description="Price per 1M tokens.")]


def utc(moment: date | datetime) -> datetime:
    """A date (its 00:00) or datetime as an aware UTC datetime; naive datetimes are UTC."""
    if not isinstance(moment, datetime):
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceRow(_Strict):
    """The three per-1M-token prices that DeepSeek and OpenAI bill on."""

    input_cache_hit: Price
    input_cache_miss: Price
    output: Price


class WindowSpec(PriceRow):
    """A daily UTC window with its own prices, e.g. DeepSeek's off-peak discount."""

    name: str = Field(description="Shown in route reasons and reports, e.g. 'off-peak'.")
    start: str = Field(description="'HH:MM' UTC, inclusive.")
    end: str = Field(description="'HH:MM' UTC, exclusive; before start means it wraps midnight.")
    weekdays: tuple[str, ...] | None = Field(
        default=None, description="Days (mon…sun) the window starts on; omit for every day."
    )

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"expected 'HH:MM' (00:00–23:59), got {value!r}")
        return value

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        days = tuple(day.lower()[:3] for day in value)
        unknown = [day for day in days if day not in WEEKDAYS]
        if unknown or not days:
            raise ValueError(f"weekdays must be among {', '.join(WEEKDAYS)}, got {list(value)}")
        return days

    @model_validator(mode="after")
    def _not_empty(self) -> WindowSpec:
        if self.start == self.end:
            raise ValueError(f"window {self.name!r} starts and ends at {self.start}")
        return self

    def seconds(self) -> tuple[int, int]:
        """Start and end as seconds after midnight."""
        return _seconds(self.start), _seconds(self.end)


def _seconds(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 3600 + int(minutes) * 60


class PeriodSpec(PriceRow):
    """Prices in force from ``effective_from`` (inclusive) to ``effective_to`` (exclusive)."""

    effective_from: datetime | date
    effective_to: datetime | date | None = None
    currency: str = "USD"
    windows: tuple[WindowSpec, ...] = ()
    source: str | None = Field(default=None, description="Where these prices come from.")
    checked: date | None = Field(
        default=None, description="The day the prices were last checked against `source`."
    )
    published_in: dict[str, PriceRow] = Field(
        default_factory=dict,
        description="The same period's list prices in other currencies, for display only.",
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.upper()
        if value not in CURRENCIES:
            raise ValueError(f"currency must be one of {', '.join(CURRENCIES)}, got {value!r}")
        return value

    @field_validator("published_in")
    @classmethod
    def _published_currencies(cls, value: dict[str, PriceRow]) -> dict[str, PriceRow]:
        upper = {currency.upper(): row for currency, row in value.items()}
        unknown = sorted(set(upper) - set(CURRENCIES))
        if unknown:
            raise ValueError(f"published_in currencies must be among {', '.join(CURRENCIES)}")
        return upper

    @model_validator(mode="after")
    def _ordered(self) -> PeriodSpec:
        if self.effective_to is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"effective_to {self.effective_to} is not after {self.effective_from}")
        return self

    @property
    def start(self) -> datetime:
        return utc(self.effective_from)

    @property
    def end(self) -> datetime | None:
        return None if self.effective_to is None else utc(self.effective_to)


class PriceTable(RootModel[dict[str, list[PeriodSpec]]]):
    """Model name → its periods, which must not overlap."""

    @model_validator(mode="after")
    def _no_overlap(self) -> PriceTable:
        for model, periods in self.root.items():
            if not periods:
                raise ValueError(f"{model}: no price periods")
            ordered = sorted(periods, key=lambda period: period.start)
            for before, after in pairwise(ordered):
                if before.end is None or before.end > after.start:
                    raise ValueError(
                        f"{model}: period from {before.effective_from} overlaps the one "
                        f"from {after.effective_from}"
                    )
        return self

    @classmethod
    def parse(cls, data: Any, source: str) -> PriceTable:
        """Validate ``data``; errors name ``source`` (a file, or 'thrifty.yaml prices')."""
        try:
            return cls.model_validate(data or {})
        except ValueError as exc:
            raise ValueError(f"invalid price table in {source}: {exc}") from exc
