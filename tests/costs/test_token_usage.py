"""Reading token counts from the usage objects different providers send."""

from __future__ import annotations

import pytest

from thrifty.costs.usage import TokenUsage


def test_deepseek_hit_and_miss_fields_win() -> None:
    usage = TokenUsage.from_openai(
        {
            "prompt_tokens": 1234,
            "completion_tokens": 567,
            "total_tokens": 1801,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "prompt_cache_hit_tokens": 1000,
            "prompt_cache_miss_tokens": 234,
        }
    )
    assert usage == TokenUsage(prompt_tokens=1234, completion_tokens=567, cache_hit_tokens=1000)
    assert usage.cache_miss_tokens == 234


def test_deepseek_fields_define_the_prompt() -> None:
    # DeepSeek bills on hit + miss; a disagreeing prompt_tokens does not change the bill.
    usage = TokenUsage.from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "prompt_cache_hit_tokens": 64,
            "prompt_cache_miss_tokens": 6,
        }
    )
    assert usage == TokenUsage(70, 1, 64)


def test_openai_cached_tokens() -> None:
    usage = TokenUsage.from_openai(
        {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
    )
    assert (usage.cache_hit_tokens, usage.cache_miss_tokens) == (1920, 86)


@pytest.mark.parametrize(
    "raw",
    [
        {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57},
        {"prompt_tokens": 50, "completion_tokens": 7, "prompt_tokens_details": None},
        {"prompt_tokens": 50, "completion_tokens": 7, "prompt_tokens_details": {}},
    ],
)
def test_no_cache_information_means_all_misses(raw: dict[str, object]) -> None:
    assert TokenUsage.from_openai(raw) == TokenUsage(50, 7, 0)


def test_missing_or_malformed_usage() -> None:
    assert TokenUsage.from_openai(None) == TokenUsage(0, 0, 0)
    assert TokenUsage.from_openai({}) == TokenUsage(0, 0, 0)
    assert TokenUsage.from_openai({"prompt_tokens": "many", "completion_tokens": -3}) == (
        TokenUsage(0, 0, 0)
    )


def test_more_cached_than_prompt_is_clamped() -> None:
    usage = TokenUsage.from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 99},
        }
    )
    assert usage == TokenUsage(10, 1, 10)


def test_direct_construction_is_checked() -> None:
    with pytest.raises(ValueError, match="more cache hits"):
        TokenUsage(prompt_tokens=5, completion_tokens=0, cache_hit_tokens=6)
    with pytest.raises(ValueError, match="non-negative"):
        TokenUsage(prompt_tokens=-1, completion_tokens=0)


def test_reasoning_tokens_are_part_of_the_completion() -> None:
    # DeepSeek V4 in thinking mode: completion_tokens already holds the reasoning.
    usage = TokenUsage.from_openai(
        {
            "prompt_tokens": 20,
            "completion_tokens": 120,
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": 20,
            "completion_tokens_details": {"reasoning_tokens": 100},
        }
    )
    assert usage == TokenUsage(20, 120, 0, reasoning_tokens=100)


def test_reasoning_reported_beside_the_completion_is_added() -> None:
    # more reasoning than completion tokens: the server left the reasoning out of its count
    usage = TokenUsage.from_openai(
        {
            "prompt_tokens": 20,
            "completion_tokens": 30,
            "completion_tokens_details": {"reasoning_tokens": 100},
        }
    )
    assert (usage.completion_tokens, usage.reasoning_tokens) == (130, 100)


def test_reasoning_beyond_the_completion_is_refused() -> None:
    with pytest.raises(ValueError, match="reasoning"):
        TokenUsage(10, 5, 0, reasoning_tokens=6)
