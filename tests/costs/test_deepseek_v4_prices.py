"""The shipped DeepSeek V4 prices, to the nano-dollar, period by period.

Per-token prices in nano-dollars are the per-1M-token price × 1000. V4-Flash: 28 / 140 / 280
(cache hit / miss / output) at launch (2026-04-24), 2.8 / 140 / 280 from the cache-hit cut
(2026-04-26 12:15 UTC). V4-Pro, 75% off 145 / 1740 / 3480: 36.25 / 435 / 870 at launch, 3.625 /
435 / 870 after the cut, and the same after the discount's end (2026-05-31 15:59 UTC), when
DeepSeek made a quarter of the launch price the list price. deepseek-chat and deepseek-reasoner
are V4-Flash from V4's launch. Every expected number below is that arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from thrifty.costs.pricebook import PriceBook
from thrifty.costs.usage import TokenUsage

# A thinking answer to a long cached system prompt: 400 of its 567 completion tokens reasoned.
V4_USAGE = {
    "prompt_tokens": 1234,
    "completion_tokens": 567,
    "total_tokens": 1801,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "prompt_cache_hit_tokens": 1000,
    "prompt_cache_miss_tokens": 234,
    "completion_tokens_details": {"reasoning_tokens": 400},
}
# 1000×28 + 234×140 + 567×280 = 28,000 + 32,760 + 158,760
FLASH_LAUNCH = 219_520
# 1000×2.8 + 234×140 + 567×280 = 2,800 + 32,760 + 158,760
FLASH_AFTER_CUT = 194_320
# 1000×36.25 + 234×435 + 567×870 = 36,250 + 101,790 + 493,290
PRO_LAUNCH = 631_330
# 1000×3.625 + 234×435 + 567×870 = 3,625 + 101,790 + 493,290
PRO_AFTER_CUT = 598_705
# V3.2: 1000×28 + 234×280 + 567×420 = 28,000 + 65,520 + 238,140
CHAT_V32 = 331_660


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.load()


@pytest.fixture(scope="module")
def usage() -> TokenUsage:
    return TokenUsage.from_openai(V4_USAGE)


@pytest.mark.parametrize(
    ("model", "at", "expected"),
    [
        ("deepseek-v4-flash", utc(2026, 4, 23, 23, 59, 59), None),  # before V4
        ("deepseek-v4-flash", utc(2026, 4, 24), FLASH_LAUNCH),
        ("deepseek-v4-flash", utc(2026, 4, 26, 12, 14, 59), FLASH_LAUNCH),
        ("deepseek-v4-flash", utc(2026, 4, 26, 12, 15), FLASH_AFTER_CUT),
        ("deepseek-v4-flash", utc(2026, 12, 2, 9), FLASH_AFTER_CUT),
        ("deepseek-v4-pro", utc(2026, 4, 23, 23, 59, 59), None),
        ("deepseek-v4-pro", utc(2026, 4, 24), PRO_LAUNCH),
        ("deepseek-v4-pro", utc(2026, 4, 26, 12, 14, 59), PRO_LAUNCH),
        ("deepseek-v4-pro", utc(2026, 4, 26, 12, 15), PRO_AFTER_CUT),
        ("deepseek-v4-pro", utc(2026, 5, 31, 15, 58, 59), PRO_AFTER_CUT),
        ("deepseek-v4-pro", utc(2026, 5, 31, 15, 59), PRO_AFTER_CUT),
        ("deepseek-v4-pro", utc(2026, 12, 2, 9), PRO_AFTER_CUT),
        ("deepseek-chat", utc(2026, 4, 23, 23, 59, 59), CHAT_V32),
        ("deepseek-chat", utc(2026, 4, 24), FLASH_LAUNCH),
        ("deepseek-chat", utc(2026, 4, 26, 12, 15), FLASH_AFTER_CUT),
        ("deepseek-reasoner", utc(2026, 4, 23, 23, 59, 59), CHAT_V32),
        ("deepseek-reasoner", utc(2026, 4, 24), FLASH_LAUNCH),
        ("deepseek-reasoner", utc(2026, 4, 26, 12, 15), FLASH_AFTER_CUT),
    ],
)
def test_cost_of_each_period(
    book: PriceBook, usage: TokenUsage, model: str, at: datetime, expected: int | None
) -> None:
    assert book.cost_nanos(model, usage, at) == expected


def test_reasoning_is_billed_once_as_output(book: PriceBook, usage: TokenUsage) -> None:
    at = utc(2026, 6, 1)
    # the 400 reasoning tokens are inside the 567: the same usage without the detail costs the same
    plain = TokenUsage.from_openai({**V4_USAGE, "completion_tokens_details": None})
    assert usage.reasoning_tokens == 400
    assert book.cost_nanos("deepseek-v4-flash", plain, at) == FLASH_AFTER_CUT
    assert book.cost_nanos("deepseek-v4-flash", usage, at) == FLASH_AFTER_CUT


def test_pro_hit_price_rounds_half_to_even(book: PriceBook) -> None:
    at = utc(2026, 5, 1)
    # 4 hits × 3.625 = 14.5 → 14; 12 × 3.625 = 43.5 → 44; 2 × 3.625 = 7.25 → 7
    assert book.cost_nanos("deepseek-v4-pro", TokenUsage(4, 0, 4), at) == 14
    assert book.cost_nanos("deepseek-v4-pro", TokenUsage(12, 0, 12), at) == 44
    assert book.cost_nanos("deepseek-v4-pro", TokenUsage(2, 0, 2), at) == 7


def test_the_discount_end_is_its_own_period(book: PriceBook) -> None:
    before = book.tariff_at("deepseek-v4-pro", utc(2026, 5, 31, 15, 58, 59))
    after = book.tariff_at("deepseek-v4-pro", utc(2026, 5, 31, 15, 59))
    assert before is not None and after is not None and before is not after
    assert before.source is not None and "discount" in before.source
    assert after.source is not None and "2026-05-22" in after.source


def test_every_v4_period_names_its_source_and_check(book: PriceBook) -> None:
    for model in ("deepseek-v4-flash", "deepseek-v4-pro"):
        for _start, _end, tariff in book.periods(model):
            assert tariff.source and tariff.checked is not None


def test_cny_list_prices_at_launch(book: PriceBook) -> None:
    flash = book.tariff_at("deepseek-v4-flash", utc(2026, 4, 25))
    pro = book.tariff_at("deepseek-v4-pro", utc(2026, 4, 25))
    assert flash is not None and pro is not None
    yuan = flash.published["CNY"]
    assert (yuan.input_cache_hit, yuan.input_cache_miss, yuan.output) == (
        Decimal("0.2"),
        Decimal("1"),
        Decimal("2"),
    )
    # the Pro launch list price ¥1 / ¥12 / ¥24, 75% off
    yuan = pro.published["CNY"]
    assert (yuan.input_cache_hit, yuan.input_cache_miss, yuan.output) == (
        Decimal("0.25"),
        Decimal("3"),
        Decimal("6"),
    )
    assert book.currency("deepseek-v4-flash") == "USD"  # costs stay in the billing currency


def test_published_prices_are_validated() -> None:
    row = {
        "effective_from": "2026-01-01",
        "input_cache_hit": 1,
        "input_cache_miss": 2,
        "output": 3,
        "published_in": {"EUR": {"input_cache_hit": 1, "input_cache_miss": 2, "output": 3}},
    }
    with pytest.raises(ValueError, match="published_in"):
        PriceBook.load({"my-model": [row]})
