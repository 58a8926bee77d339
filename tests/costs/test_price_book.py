"""Cloud cost to the nano-dollar, from recorded DeepSeek usage objects and the shipped tables.

Per-token prices in nano-dollars are the per-1M-token price × 1000: deepseek-chat costs 70 / 270 /
1100 (cache hit / miss / output) standard and 35 / 135 / 550 off-peak; deepseek-reasoner 140 / 550
/ 2190 standard and 35 / 137.5 / 547.5 off-peak. Every expected number below is that arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from thrifty.costs.pricebook import PriceBook
from thrifty.costs.usage import TokenUsage

# A deepseek-chat answer to a long system prompt the provider had cached.
CHAT_USAGE = {
    "prompt_tokens": 1234,
    "completion_tokens": 567,
    "total_tokens": 1801,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "prompt_cache_hit_tokens": 1000,
    "prompt_cache_miss_tokens": 234,
}
# chat, standard: 1000×70 + 234×270 + 567×1100 = 70,000 + 63,180 + 623,700
CHAT_STANDARD = 756_880
# chat, off-peak: 1000×35 + 234×135 + 567×550 = 35,000 + 31,590 + 311,850
CHAT_OFF_PEAK = 378_440

# A short deepseek-reasoner exchange with nothing cached.
REASONER_USAGE = {
    "prompt_tokens": 13,
    "completion_tokens": 2,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 1},
    "prompt_cache_hit_tokens": 0,
    "prompt_cache_miss_tokens": 13,
}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.load()


@pytest.fixture(scope="module")
def chat() -> TokenUsage:
    return TokenUsage.from_openai(CHAT_USAGE)


def test_shipped_models(book: PriceBook) -> None:
    assert {"deepseek-chat", "deepseek-reasoner"} <= set(book.models)
    assert book.currency("deepseek-chat") == "USD"


def test_chat_standard_and_off_peak(book: PriceBook, chat: TokenUsage) -> None:
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 3, 3, 10)) == CHAT_STANDARD
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 3, 3, 17)) == CHAT_OFF_PEAK


def test_reasoner_standard_and_off_peak(book: PriceBook, chat: TokenUsage) -> None:
    # standard: 1000×140 + 234×550 + 567×2190 = 140,000 + 128,700 + 1,241,730
    assert book.cost_nanos("deepseek-reasoner", chat, utc(2025, 3, 3, 10)) == 1_510_430
    # off-peak: 1000×35 + 234×137.5 + 567×547.5 = 35,000 + 32,175 + 310,432.5 = 377,607.5,
    # half to even → 377,608
    assert book.cost_nanos("deepseek-reasoner", chat, utc(2025, 3, 3, 17)) == 377_608


def test_half_nano_rounds_to_even(book: PriceBook) -> None:
    usage = TokenUsage.from_openai(REASONER_USAGE)
    at = utc(2025, 3, 3, 20)
    # 13×137.5 + 2×547.5 = 1,787.5 + 1,095 = 2,882.5 → 2,882 (even: rounds down)
    assert book.cost_nanos("deepseek-reasoner", usage, at) == 2_882
    # 13×137.5 + 4×547.5 = 1,787.5 + 2,190 = 3,977.5 → 3,978 (even: rounds up)
    assert book.cost_nanos("deepseek-reasoner", TokenUsage(13, 4), at) == 3_978


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2025, 3, 3, 16, 29, 59), CHAT_STANDARD),  # a second before the window
        (utc(2025, 3, 3, 16, 30), CHAT_OFF_PEAK),  # start is inclusive
        (utc(2025, 3, 3, 23, 59, 59), CHAT_OFF_PEAK),
        (utc(2025, 3, 4, 0, 0), CHAT_OFF_PEAK),  # wrapped past midnight
        (datetime(2025, 3, 4, 0, 29, 59, 999_999, tzinfo=UTC), CHAT_OFF_PEAK),
        (utc(2025, 3, 4, 0, 30), CHAT_STANDARD),  # end is exclusive
        (utc(2025, 3, 4, 12, 0), CHAT_STANDARD),
    ],
)
def test_off_peak_window_edges(
    book: PriceBook, chat: TokenUsage, at: datetime, expected: int
) -> None:
    assert book.cost_nanos("deepseek-chat", chat, at) == expected


def test_window_is_read_in_utc(book: PriceBook, chat: TokenUsage) -> None:
    beijing = timezone(timedelta(hours=8))
    # 00:30 in Beijing is 16:30 UTC the day before: off-peak starts
    assert book.cost_nanos("deepseek-chat", chat, datetime(2025, 3, 4, 0, 30, tzinfo=beijing)) == (
        CHAT_OFF_PEAK
    )
    # 08:30 in Beijing is 00:30 UTC: off-peak is over
    assert book.cost_nanos("deepseek-chat", chat, datetime(2025, 3, 4, 8, 30, tzinfo=beijing)) == (
        CHAT_STANDARD
    )


def test_naive_time_is_refused(book: PriceBook, chat: TokenUsage) -> None:
    with pytest.raises(ValueError, match="aware"):
        book.cost_nanos("deepseek-chat", chat, datetime(2025, 3, 3, 17))


def test_across_the_off_peak_introduction(book: PriceBook, chat: TokenUsage) -> None:
    # The evening before 2025-02-26 had no discount window yet.
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 2, 25, 17)) == CHAT_STANDARD
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 2, 25, 23, 59, 59)) == CHAT_STANDARD
    # From 2025-02-26 00:00 the new period is in force, with its window (which wraps midnight).
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 2, 26, 0, 10)) == CHAT_OFF_PEAK
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 2, 26, 12)) == CHAT_STANDARD
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 2, 26, 17)) == CHAT_OFF_PEAK


def test_before_the_first_period_is_unpriced(book: PriceBook, chat: TokenUsage) -> None:
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 2, 7, 23, 59, 59)) is None
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 2, 8)) == CHAT_STANDARD


def test_unknown_model(book: PriceBook, chat: TokenUsage) -> None:
    assert book.cost_nanos("gpt-nonexistent", chat, utc(2025, 3, 3, 10)) is None
    assert book.price_at("gpt-nonexistent", utc(2025, 3, 3, 10)) is None
    assert "gpt-nonexistent" not in book
    with pytest.raises(KeyError):
        book.currency("gpt-nonexistent")


def test_price_at_names_the_window(book: PriceBook) -> None:
    peak = book.price_at("deepseek-chat", utc(2025, 3, 3, 10))
    off_peak = book.price_at("deepseek-chat", utc(2025, 3, 3, 17))
    assert peak is not None and peak.window is None
    assert peak.input_cache_miss == Decimal("0.27")
    assert off_peak is not None and off_peak.window == "off-peak"
    assert off_peak.output == Decimal("0.55")


def test_user_row_overrides_from_its_date(chat: TokenUsage) -> None:
    book = PriceBook.load(
        {
            "deepseek-chat": [
                {
                    "effective_from": "2026-12-01T00:00:00Z",
                    "currency": "USD",
                    "input_cache_hit": 0.01,
                    "input_cache_miss": 0.1,
                    "output": 0.2,
                }
            ]
        }
    )
    # the user's period, no window: 1000×10 + 234×100 + 567×200 = 10,000 + 23,400 + 113,400
    assert book.cost_nanos("deepseek-chat", chat, utc(2026, 12, 1, 17)) == 146_800
    assert book.cost_nanos("deepseek-chat", chat, utc(2026, 12, 1, 0)) == 146_800
    # the shipped table still prices what the user's row does not cover: V4-Flash after the
    # cache-hit cut, 1000×2.8 + 234×140 + 567×280 = 2,800 + 32,760 + 158,760
    assert book.cost_nanos("deepseek-chat", chat, utc(2026, 11, 30, 23, 59, 59)) == 194_320
    # and V3.2 before V4: 1000×28 + 234×280 + 567×420 = 28,000 + 65,520 + 238,140
    assert book.cost_nanos("deepseek-chat", chat, utc(2026, 4, 23, 23, 59, 59)) == 331_660
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 9, 4, 17)) == CHAT_OFF_PEAK
    assert book.cost_nanos("deepseek-reasoner", chat, utc(2025, 6, 6, 10)) == 1_510_430


def test_shipped_table_follows_the_2025_september_changes(chat: TokenUsage) -> None:
    book = PriceBook.load()
    # V3.1, one price and no off-peak window: 1000×70 + 234×560 + 567×1680 = 70,000 + 131,040
    # + 952,560
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 9, 6, 17)) == 1_153_600
    assert book.cost_nanos("deepseek-reasoner", chat, utc(2025, 9, 5, 16)) == 1_153_600
    assert book.cost_nanos("deepseek-chat", chat, utc(2025, 9, 5, 15, 59, 59)) == CHAT_STANDARD


def test_user_model_with_weekday_window() -> None:
    book = PriceBook.load(
        {
            "qwen-plus": [
                {
                    "effective_from": "2025-01-01",
                    "currency": "cny",
                    "input_cache_hit": "0.2",
                    "input_cache_miss": "0.8",
                    "output": "2",
                    "windows": [
                        {
                            "name": "friday-night",
                            "start": "22:00",
                            "end": "02:00",
                            "weekdays": ["fri"],
                            "input_cache_hit": "0.1",
                            "input_cache_miss": "0.4",
                            "output": "1",
                        }
                    ],
                }
            ]
        }
    )
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=100, cache_hit_tokens=0)
    assert book.currency("qwen-plus") == "CNY"
    # 2025-03-07 is a Friday. Window: 1000×400 + 100×1000 = 500,000 nano-yuan.
    assert book.cost_nanos("qwen-plus", usage, utc(2025, 3, 7, 22)) == 500_000
    # Saturday 01:00 is still Friday's window.
    assert book.cost_nanos("qwen-plus", usage, utc(2025, 3, 8, 1)) == 500_000
    # Saturday 22:00 is not: 1000×800 + 100×2000 = 1,000,000.
    assert book.cost_nanos("qwen-plus", usage, utc(2025, 3, 8, 22)) == 1_000_000
    # Friday 01:00 belongs to Thursday's (absent) window.
    assert book.cost_nanos("qwen-plus", usage, utc(2025, 3, 7, 1)) == 1_000_000


def _period(start: str, end: str | None = None, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "effective_from": start,
        "input_cache_hit": 1,
        "input_cache_miss": 2,
        "output": 3,
        **extra,
    }
    if end is not None:
        row["effective_to"] = end
    return row


def _window(start: str, end: str) -> dict[str, object]:
    prices = {"input_cache_hit": 1, "input_cache_miss": 1, "output": 1}
    return {"name": "w", "start": start, "end": end, **prices}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_period("2025-01-01"), _period("2025-06-01")], "overlaps"),
        ([_period("2025-06-01", "2025-01-01")], "not after"),
        ([_period("2025-01-01", windows=[_window("24:00", "01:00")])], "HH:MM"),
        ([_period("2025-01-01", windows=[_window("01:00", "01:00")])], "starts and ends"),
        ([_period("2025-01-01", currency="EUR")], "currency"),
        ([_period("2025-01-01", output=-1)], "greater than or equal"),
        ([_period("2025-01-01", outptu=1)], "outptu"),
    ],
)
def test_invalid_user_rows(rows: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceBook.load({"my-model": rows})


def test_user_rows_cannot_mix_currencies_with_shipped_history() -> None:
    with pytest.raises(ValueError, match="several currencies"):
        PriceBook.load({"deepseek-chat": [_period("2025-09-05", currency="CNY")]})
    # covering the whole history switches the model's currency cleanly
    book = PriceBook.load({"deepseek-chat": [_period("2000-01-01", currency="CNY")]})
    assert book.currency("deepseek-chat") == "CNY"
