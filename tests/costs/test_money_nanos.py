"""Nano-unit money: formatting, parsing, rounding and USD↔CNY conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest

from thrifty.costs.money import (
    convert,
    convert_nanos,
    format_amount,
    format_nanos,
    parse_nanos,
    round_half_even,
    to_decimal,
    to_nanos,
)


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (1234, "0.000001234"),
        (0, "0.000000000"),
        (756_880, "0.000756880"),
        (12_345_678_901, "12.345678901"),
        (-5, "-0.000000005"),
    ],
)
def test_format_and_parse_round_trip(nanos: int, text: str) -> None:
    assert format_nanos(nanos) == text
    assert parse_nanos(text) == nanos


def test_parse_rounds_sub_nano_half_to_even() -> None:
    assert parse_nanos("0.0000000005") == 0  # 0.5 nano → 0
    assert parse_nanos("0.0000000015") == 2  # 1.5 nano → 2
    assert parse_nanos(" 1.1 ") == 1_100_000_000


@pytest.mark.parametrize("text", ["", "abc", "NaN", "Infinity"])
def test_parse_rejects_non_amounts(text: str) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        parse_nanos(text)


def test_decimal_round_trip() -> None:
    assert to_decimal(1_510_430) == Decimal("0.00151043")
    assert to_nanos(Decimal("0.27")) == 270_000_000
    assert to_nanos(3) == 3_000_000_000


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(25, 10, 2), (35, 10, 4), (24, 10, 2), (26, 10, 3), (-25, 10, -2), (0, 7, 0)],
)
def test_round_half_even(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_even(numerator, denominator) == expected


def test_convert_usd_cny() -> None:
    rate = Decimal("7.2")
    # 756,880 nano-USD × 7.2 = 5,449,536 nano-CNY
    assert convert_nanos(756_880, "USD", "CNY", cny_per_usd=rate) == 5_449_536
    # 5,449,536 / 7.2 = 756,880 exactly
    assert convert_nanos(5_449_536, "cny", "usd", cny_per_usd=rate) == 756_880
    # 10 / 7.2 = 1.39 → 1
    assert convert_nanos(10, "CNY", "USD", cny_per_usd=rate) == 1
    # 3 / 2 = 1.5 → 2 and 5 / 2 = 2.5 → 2 (half to even)
    assert convert_nanos(3, "CNY", "USD", cny_per_usd=Decimal(2)) == 2
    assert convert_nanos(5, "CNY", "USD", cny_per_usd=Decimal(2)) == 2
    assert convert_nanos(42, "USD", "USD", cny_per_usd=rate) == 42
    assert convert(Decimal("0.6"), "CNY", "USD", cny_per_usd=Decimal("7.5")) == Decimal("0.08")


def test_convert_rejects_unknown_currency_and_bad_rate() -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        convert_nanos(1, "USD", "EUR", cny_per_usd=Decimal("7.2"))
    with pytest.raises(ValueError, match="positive"):
        convert_nanos(1, "USD", "CNY", cny_per_usd=Decimal(0))


def test_format_amount() -> None:
    assert format_amount(Decimal("1154730.395"), "CNY") == "¥1,154,730.40"
    assert format_amount(Decimal("-0.015"), "USD") == "-$0.02"
    assert format_amount(Decimal("-0.005"), "USD") == "$0.00"  # no "-$0.00"
    assert format_amount(Decimal("0.000680"), "USD", places=6) == "$0.000680"
