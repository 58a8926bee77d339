"""Cloud price tables with effective dates and daily windows, and exact per-request cost.

`PriceBook.load` reads the shipped tables (``costs/prices/*.yaml``, one per provider) and lays
the user's ``prices:`` rows from thrifty.yaml over them: for the same model, a user period wins
over shipped ones for the time it covers, and shipped periods still price the rest. So a user
adds a price change with one row (``effective_from`` the change date) and keeps the history.

`PriceBook.cost_nanos` runs once per request in the gateway's hot path, so everything that can be
is done at load time: each model's periods become a sorted timeline searched by bisection, and
each price becomes an integer per-token price. A per-1M-token price is a whole number of nano-units
per token when it has at most three decimals ($0.27 → 270); finer prices ($0.1375 → 137.5) are
scaled by a power of ten so the sum stays an exact integer, and the request total is then rounded
half to even once, to a whole nano-unit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import yaml

from .money import round_half_even
from .price_schema import WEEKDAYS, PeriodSpec, PriceRow, PriceTable
from .usage import TokenUsage

_FOREVER = datetime.max.replace(tzinfo=UTC)
_NANOS_PER_TOKEN = Decimal(1000)  # 1 unit per 1M tokens = 1e9 nanos / 1e6 tokens


def _per_token(prices: Iterable[Decimal]) -> tuple[tuple[int, ...], int]:
    """Per-token nano prices as integers over one common power-of-ten ``scale``."""
    nanos = [price * _NANOS_PER_TOKEN for price in prices]
    digits = max(max(0, -int(value.normalize().as_tuple().exponent)) for value in nanos)
    scale = 10**digits
    return tuple(int(value * scale) for value in nanos), scale


@dataclass(frozen=True, slots=True)
class Rates:
    """Prices per 1M tokens in force at one instant; ``window`` names a discount window."""

    currency: str
    input_cache_hit: Decimal
    input_cache_miss: Decimal
    output: Decimal
    window: str | None = None
    _scaled: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _scale: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scaled, scale = _per_token((self.input_cache_hit, self.input_cache_miss, self.output))
        object.__setattr__(self, "_scaled", scaled)
        object.__setattr__(self, "_scale", scale)

    @classmethod
    def of(cls, row: PriceRow, currency: str, window: str | None = None) -> Rates:
        return cls(currency, row.input_cache_hit, row.input_cache_miss, row.output, window)

    def cost_nanos(self, usage: TokenUsage) -> int:
        """What ``usage`` costs at these rates, in nano-units of `currency`."""
        hit, miss, out = self._scaled
        total = (
            usage.cache_hit_tokens * hit
            + (usage.prompt_tokens - usage.cache_hit_tokens) * miss
            + usage.completion_tokens * out
        )
        return total if self._scale == 1 else round_half_even(total, self._scale)


@dataclass(frozen=True, slots=True)
class Window:
    """A daily UTC window, ``start`` inclusive to ``end`` exclusive, in seconds after midnight."""

    start: int
    end: int
    weekdays: frozenset[int] | None  # Monday is 0, as datetime.weekday(); None: every day
    rates: Rates

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` (UTC) falls inside; a wrapping window belongs to the day it starts."""
        second = at.hour * 3600 + at.minute * 60 + at.second
        day = at.weekday()
        if self.start < self.end:
            inside = self.start <= second < self.end
        elif second >= self.start:
            inside = True
        elif second < self.end:
            inside, day = True, (day - 1) % 7  # the small hours belong to yesterday's window
        else:
            inside = False
        return inside and (self.weekdays is None or day in self.weekdays)


@dataclass(frozen=True, slots=True)
class Tariff:
    """One period's prices: the base rates and the windows that override them.

    ``source`` and ``checked`` say where the figures come from and when they were last checked;
    ``published`` holds the list prices in other currencies (display only, never billed).
    """

    base: Rates
    windows: tuple[Window, ...] = ()
    source: str | None = None
    checked: date | None = None
    published: Mapping[str, Rates] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, period: PeriodSpec) -> Tariff:
        windows = []
        for spec in period.windows:
            start, end = spec.seconds()
            days = None if spec.weekdays is None else frozenset(map(WEEKDAYS.index, spec.weekdays))
            windows.append(Window(start, end, days, Rates.of(spec, period.currency, spec.name)))
        published = {cur: Rates.of(row, cur) for cur, row in period.published_in.items()}
        return cls(
            Rates.of(period, period.currency),
            tuple(windows),
            period.source,
            period.checked,
            published,
        )

    def rates_at(self, at: datetime) -> Rates:
        """The first window containing ``at`` (UTC), else the base rates."""
        for window in self.windows:
            if window.contains(at):
                return window.rates
        return self.base


@dataclass(slots=True)
class _Timeline:
    """One model's non-overlapping periods, sorted by start; ends are exclusive."""

    starts: list[datetime] = field(default_factory=list)
    ends: list[datetime] = field(default_factory=list)
    tariffs: list[Tariff] = field(default_factory=list)

    def overlay(self, start: datetime, end: datetime, tariff: Tariff) -> None:
        """Put ``tariff`` over [start, end), cutting away what it covers of earlier periods."""
        kept: list[tuple[datetime, datetime, Tariff]] = []
        for old_start, old_end, old in zip(self.starts, self.ends, self.tariffs, strict=True):
            if old_start < start:
                kept.append((old_start, min(old_end, start), old))
            if old_end > end:
                kept.append((max(old_start, end), old_end, old))
        kept.append((start, end, tariff))
        kept.sort(key=lambda segment: segment[0])
        self.starts = [segment[0] for segment in kept]
        self.ends = [segment[1] for segment in kept]
        self.tariffs = [segment[2] for segment in kept]

    def at(self, moment: datetime) -> Tariff | None:
        index = bisect_right(self.starts, moment) - 1
        if index < 0 or moment >= self.ends[index]:
            return None
        return self.tariffs[index]


def _shipped_tables() -> list[tuple[str, Any]]:
    folder = resources.files("thrifty.costs").joinpath("prices")
    entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    return [
        (f"costs/prices/{entry.name}", yaml.safe_load(entry.read_text(encoding="utf-8")))
        for entry in entries
        if entry.name.endswith(".yaml")
    ]


class PriceBook:
    """Every priced model's timeline; look prices up by model and instant."""

    __slots__ = ("_models",)

    def __init__(self, shipped: Iterable[PriceTable] = (), user: PriceTable | None = None):
        self._models: dict[str, _Timeline] = {}
        seen: dict[str, int] = {}
        for number, table in enumerate(shipped):
            for model, periods in table.root.items():
                if seen.setdefault(model, number) != number:
                    raise ValueError(f"model {model!r} is priced in two shipped tables")
                self._add(model, periods)
        if user is not None:
            for model, periods in user.root.items():
                self._add(model, periods)
        for model, timeline in self._models.items():
            currencies = {tariff.base.currency for tariff in timeline.tariffs}
            if len(currencies) > 1:
                raise ValueError(
                    f"{model}: periods in several currencies ({', '.join(sorted(currencies))}); "
                    "to switch currency, give prices: rows that cover all of its history"
                )

    def _add(self, model: str, periods: Iterable[PeriodSpec]) -> None:
        timeline = self._models.setdefault(model, _Timeline())
        for period in periods:
            timeline.overlay(period.start, period.end or _FOREVER, Tariff.of(period))

    @classmethod
    def load(cls, extra: Mapping[str, Any] | None = None) -> PriceBook:
        """The shipped tables, with ``extra`` (thrifty.yaml's ``prices:``) laid over them."""
        shipped = [PriceTable.parse(data, source) for source, data in _shipped_tables()]
        user = PriceTable.parse(dict(extra), "thrifty.yaml prices") if extra else None
        return cls(shipped, user)

    @property
    def models(self) -> list[str]:
        return sorted(self._models)

    def __contains__(self, model: object) -> bool:
        return model in self._models

    def currency(self, model: str) -> str:
        """The currency ``model`` is priced in; KeyError for a model without prices."""
        return self._models[model].tariffs[0].base.currency

    def periods(self, model: str) -> list[tuple[datetime, datetime | None, Tariff]]:
        """``model``'s periods in time order: start, end (None: open-ended) and tariff."""
        timeline = self._models.get(model)
        if timeline is None:
            return []
        return [
            (start, None if end == _FOREVER else end, tariff)
            for start, end, tariff in zip(
                timeline.starts, timeline.ends, timeline.tariffs, strict=True
            )
        ]

    def tariff_at(self, model: str, at: datetime) -> Tariff | None:
        """The period in force for ``model`` at ``at`` (aware), or None when none is."""
        timeline = self._models.get(model)
        if timeline is None:
            return None
        if at.tzinfo is not UTC:
            if at.tzinfo is None:
                raise ValueError("price lookups need an aware datetime (UTC), got a naive one")
            at = at.astimezone(UTC)
        return timeline.at(at)

    def price_at(self, model: str, at: datetime) -> Rates | None:
        """The rates for ``model`` at ``at``: a window's when ``at`` is inside it."""
        tariff = self.tariff_at(model, at)
        if tariff is None:
            return None
        if tariff.windows and at.tzinfo is not UTC:
            at = at.astimezone(UTC)
        return tariff.rates_at(at)

    def cost_nanos(self, model: str, usage: TokenUsage, at: datetime) -> int | None:
        """Exact cost of ``usage`` in nano-units of `currency`; None when ``model`` is unpriced."""
        rates = self.price_at(model, at)
        return None if rates is None else rates.cost_nanos(usage)
