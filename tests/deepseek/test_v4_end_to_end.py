"""End to end against a stand-in that behaves like DeepSeek's API since V4.

thrifty runs with nothing but DEEPSEEK_API_KEY (and DEEPSEEK_BASE_URL pointing at the stand-in),
so these tests exercise the default DeepSeek upstream: the aliases deepseek-chat and
deepseek-reasoner reach the stand-in as deepseek-v4-flash with thinking disabled / enabled; the
stand-in thinks by default, answers with `reasoning_content` (whole, and in stream deltas),
counts reasoning in `completion_tokens_details.reasoning_tokens` and writes spaced JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import openai
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer

# Prices in force now (from 2026-04-26 12:15 UTC), per 1M tokens: cache hit / miss / output.
FLASH = (Decimal("0.0028"), Decimal("0.14"), Decimal("0.28"))
PRO = (Decimal("0.003625"), Decimal("0.435"), Decimal("0.87"))
PHONE = "13812345678"


@pytest.fixture(scope="module")
def v4() -> Iterator[FakeUpstream]:
    with start_upstream(flavor="deepseek-v4") as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(v4: FakeUpstream) -> Iterator[ThriftyServer]:
    config = {"local": {"enabled": False}, "privacy": {"on_pii": "mask"}}
    env = {"DEEPSEEK_API_KEY": "sk-test-v4", "DEEPSEEK_BASE_URL": v4.url}
    with ThriftyServer(config=config, env=env) as server:
        yield server


@pytest.fixture()
def client(gateway: ThriftyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=60)


def _nanos(usage: dict[str, Any], prices: tuple[Decimal, Decimal, Decimal]) -> int:
    """The cost of ``usage`` by hand: per 1M tokens × 1000 nano-dollars per token each."""
    hit = usage["prompt_cache_hit_tokens"]
    miss = usage["prompt_cache_miss_tokens"]
    out = usage["completion_tokens"]
    total = (hit * prices[0] + miss * prices[1] + out * prices[2]) * 1000
    return int(total.to_integral_value(rounding=ROUND_HALF_EVEN))


def _last_body(v4: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = v4.stats()["bodies"][-1]
    return body


@pytest.mark.parametrize(
    ("alias", "model", "thinking"),
    [
        ("deepseek-chat", "deepseek-v4-flash", {"type": "disabled"}),
        ("deepseek-reasoner", "deepseek-v4-flash", {"type": "enabled"}),
        ("deepseek-v4-flash", "deepseek-v4-flash", None),
        ("deepseek-v4-pro", "deepseek-v4-pro", None),
    ],
)
def test_each_name_reaches_deepseek_as_v4(
    v4: FakeUpstream,
    client: openai.OpenAI,
    alias: str,
    model: str,
    thinking: dict[str, str] | None,
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=alias, messages=[{"role": "user", "content": f"echo:which model is {alias}?"}]
    )
    reply = raw.parse()
    sent = _last_body(v4)
    assert sent["model"] == model
    assert sent.get("thinking") == thinking
    assert raw.headers["x-thrifty-route"] == alias
    message = reply.choices[0].message
    assert message.content == f"which model is {alias}?"
    reasoning = getattr(message, "reasoning_content", None)
    # V4 thinks unless told not to: only deepseek-chat's answer comes without reasoning
    if alias == "deepseek-chat":
        assert reasoning is None
    else:
        assert reasoning == f"Echo which model is {alias}? back."


def test_the_clients_thinking_wins_over_the_alias(v4: FakeUpstream, client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="deepseek-chat",
        messages=[{"role": "user", "content": "echo:think this time"}],
        extra_body={"thinking": {"type": "enabled"}},
    )
    assert _last_body(v4)["thinking"] == {"type": "enabled"}
    assert (
        getattr(reply.choices[0].message, "reasoning_content", None) == "Echo think this time back."
    )


@pytest.mark.parametrize(
    ("alias", "prices"), [("deepseek-reasoner", FLASH), ("deepseek-v4-pro", PRO)]
)
def test_cost_counts_reasoning_as_output(
    gateway: ThriftyServer, client: openai.OpenAI, alias: str, prices: Any
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=alias, messages=[{"role": "user", "content": f"echo:price me on {alias}"}]
    )
    usage = raw.parse().usage
    assert usage is not None
    details = usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens
    assert usage.completion_tokens > details.reasoning_tokens  # the answer's own tokens too
    expected = _nanos(usage.model_dump(), prices)
    assert Decimal(raw.headers["x-thrifty-cost-usd"]) == Decimal(expected) / 10**9
    row = gateway.row(raw.headers["x-thrifty-request-id"])
    assert row["cost_nanos"] == expected
    assert row["completion_tokens"] == usage.completion_tokens


def _stream(
    client: openai.OpenAI, model: str, text: str, **extra: Any
) -> tuple[str, str, Any, str]:
    """Reasoning, content, usage and request id of a streamed answer."""
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
        **extra,
    )
    reasoning, content, usage = "", "", None
    for chunk in raw.parse():
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            content += choice.delta.content or ""
    return reasoning, content, usage, raw.headers["x-thrifty-request-id"]


def test_streamed_reasoning_reaches_the_client(client: openai.OpenAI) -> None:
    reasoning, content, usage, _ = _stream(client, "deepseek-reasoner", "echo:一步一步想")
    assert reasoning == "Echo 一步一步想 back."
    assert content == "一步一步想"
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens


def test_streamed_reasoning_is_metered_in_the_log(
    gateway: ThriftyServer, client: openai.OpenAI
) -> None:
    # DeepSeek's spaced JSON ("usage": {...}) must not hide the usage chunk from the meter
    _, _, usage, request_id = _stream(client, "deepseek-reasoner", "echo:记账")
    assert usage is not None
    row = gateway.row(request_id)
    assert row["completion_tokens"] == usage.completion_tokens
    assert row["cost_nanos"] == _nanos(usage.model_dump(), FLASH)


@pytest.mark.parametrize("stream", [False, True])
def test_masked_values_are_restored_inside_the_reasoning(
    v4: FakeUpstream, client: openai.OpenAI, stream: bool
) -> None:
    text = f"echo:请回拨 {PHONE} 谢谢"
    if stream:
        reasoning, content, _, _ = _stream(client, "deepseek-reasoner", text)
    else:
        reply = client.chat.completions.create(
            model="deepseek-reasoner", messages=[{"role": "user", "content": text}]
        )
        reasoning = getattr(reply.choices[0].message, "reasoning_content", None) or ""
        content = reply.choices[0].message.content or ""
    sent = str(_last_body(v4)["messages"])
    assert PHONE not in sent and "<PHONE_1>" in sent  # the cloud saw a placeholder
    assert content == f"请回拨 {PHONE} 谢谢"
    assert reasoning == f"Echo 请回拨 {PHONE} 谢谢 back."


@pytest.mark.parametrize("first_streamed", [False, True])
def test_the_cache_keeps_the_reasoning_apart(
    v4: FakeUpstream, client: openai.OpenAI, first_streamed: bool
) -> None:
    text = f"echo:cache me {'streamed' if first_streamed else 'whole'}"
    messages = [{"role": "user", "content": text}]
    if first_streamed:
        _stream(client, "deepseek-reasoner", text, seed=1)
    else:
        client.chat.completions.create(model="deepseek-reasoner", messages=messages, seed=1)  # type: ignore[arg-type]
    sent = v4.stats()["requests"]
    raw = client.chat.completions.with_raw_response.create(
        model="deepseek-reasoner",
        messages=messages,
        seed=1,  # type: ignore[arg-type]
    )
    assert raw.headers["x-thrifty-route"] == "cache" and v4.stats()["requests"] == sent
    message = raw.parse().choices[0].message
    assert message.content == text.removeprefix("echo:")
    assert getattr(message, "reasoning_content", None) == f"Echo {text.removeprefix('echo:')} back."
    # and a streaming client is sent the cached reasoning as reasoning deltas
    reasoning, content, _, _ = _stream(client, "deepseek-reasoner", text, seed=1)
    assert v4.stats()["requests"] == sent
    assert (reasoning, content) == (f"Echo {text.removeprefix('echo:')} back.", message.content)
