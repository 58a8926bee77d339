"""Exact money as integer nano-units (1e-9 of a currency).

Every amount the gateway meters is an ``int`` of nano-units: sums stay exact, they fit SQLite's
INTEGER, and with prices quoted per 1M tokens a price of $0.27 is exactly 270 nano-dollars per
token. Conversion and parsing go through ``Decimal`` and round half to even once, at the end.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

NANOS = 10**9
"""Nano-units in one unit of a currency."""

CURRENCIES = ("USD", "CNY")
"""Currencies that the price tables and the converter know."""


def round_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even, in integers only (denominator > 0)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def to_nanos(amount: Decimal | int | str) -> int:
    """An amount in whole units (``Decimal("0.27")``, ``"1.5"``, ``3``) as nano-units."""
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of money: {amount!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount of money: {amount!r}")
    return int((value * NANOS).to_integral_value(rounding=ROUND_HALF_EVEN))


def parse_nanos(text: str) -> int:
    """Parse a decimal string such as ``"0.000001234"`` (what `format_nanos` writes) to nanos."""
    return to_nanos(text.strip())


def to_decimal(nanos: int) -> Decimal:
    """Nano-units as an exact ``Decimal`` of whole units."""
    return Decimal(nanos).scaleb(-9)


def format_nanos(nanos: int) -> str:
    """Nano-units as a fixed nine-decimal string: ``1234`` → ``"0.000001234"``."""
    sign = "-" if nanos < 0 else ""
    units, frac = divmod(abs(nanos), NANOS)
    return f"{sign}{units}.{frac:09d}"


def convert(amount: Decimal, source: str, target: str, *, cny_per_usd: Decimal) -> Decimal:
    """Convert an amount between USD and CNY at ``cny_per_usd`` (e.g. ``Decimal("7.2")``)."""
    source, target = source.upper(), target.upper()
    for currency in (source, target):
        if currency not in CURRENCIES:
            raise ValueError(f"unknown currency {currency!r}; known: {', '.join(CURRENCIES)}")
    if source == target:
        return amount
    if cny_per_usd <= 0:
        raise ValueError(f"cny_per_usd must be positive, got {cny_per_usd}")
    return amount * cny_per_usd if source == "USD" else amount / cny_per_usd


def convert_nanos(nanos: int, source: str, target: str, *, cny_per_usd: Decimal) -> int:
    """`convert` for nano-units, rounded half to even to a whole nano-unit."""
    converted = convert(Decimal(nanos), source, target, cny_per_usd=cny_per_usd)
    return int(converted.to_integral_value(rounding=ROUND_HALF_EVEN))


_SYMBOLS = {"USD": "$", "CNY": "¥"}


def format_amount(amount: Decimal, currency: str, places: int = 2) -> str:
    """A report amount: ``Decimal("1234.5"), "CNY"`` → ``"¥1,234.50"`` (half to even)."""
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    sign = "-" if rounded < 0 else ""
    return f"{sign}{_SYMBOLS.get(currency.upper(), '')}{abs(rounded):,}"
