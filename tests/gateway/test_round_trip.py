"""The round trip through the gateway, whole and streamed, with the official openai client.

The upstream is the fake one in its `python-sse` flavour: spaced JSON (as Python's json.dumps
writes it), CRLF line ends, a comment before every event and each event's JSON spread over several
`data:` lines. The app runs in-process (its stages inspectable) in front of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from thrifty.api.app import build_app
from thrifty.config import Settings
from thrifty.costs.pricebook import PriceBook
from thrifty.costs.usage import TokenUsage
from thrifty.store.db import connect

PRICES = {
    "fake-chat": [
        {
            "effective_from": "2020-01-01",
            "currency": "USD",
            "input_cache_hit": "0.1",
            "input_cache_miss": "1",
            "output": "2",
        }
    ]
}
RUDE = "# action: mask\n# direction: output\ndarn\n该死\n"
PHONE = "13812345678"


@pytest.fixture(scope="module")
def loose() -> Iterator[FakeUpstream]:
    with start_upstream(flavor="python-sse") as up:
        yield up


def make_app(home: Path, upstream: FakeUpstream, **extra: Any) -> Any:
    """No stage reads the chunks unless `extra` turns moderation on: then only the events that
    may carry usage or a finish reason are parsed."""
    extra.setdefault("moderation", {"enabled": False})
    settings = Settings(
        home=home,
        local={"enabled": False},
        upstreams=[
            {"name": "cloud", "base_url": upstream.url, "models": {"cloud-chat": "fake-chat"}}
        ],
        prices=PRICES,
        limits={"default_tenant": {"daily_tokens": 1_000_000, "daily_usd": 100}},
        store={"flush_interval_s": 0.01},
        **extra,
    )
    return build_app(settings, None)


def run_with(app: Any, scenario: Any) -> Any:
    """Run `scenario(client)` against the app with its lifespan, then flush the request log."""

    async def go() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                client = openai.AsyncOpenAI(
                    base_url="http://t/v1", api_key="unused", http_client=http, max_retries=0
                )
                result = await scenario(client)
            app.state.runtime.request_log.flush()
            return result

    return asyncio.run(go())


def logged(app: Any) -> dict[str, dict[str, Any]]:
    with connect(app.state.runtime.settings.database_url) as conn:
        rows = conn.execute("SELECT * FROM requests").fetchall()
    return {row["id"]: dict(row) for row in rows}


def charged(app: Any) -> tuple[int, int]:
    """Tokens and nano-USD the tenant's daily budget was charged."""
    counters = app.state.runtime.parts.limiter.counters
    state = counters._subjects["tenant:default"]
    return state.tokens, state.nanos


def expected_nanos(usage: dict[str, Any]) -> int:
    now = datetime.now(UTC)  # one period, open-ended: the time does not matter
    cost = PriceBook.load(PRICES).cost_nanos("fake-chat", TokenUsage.from_openai(usage), now)
    assert cost is not None
    return cost


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_loose_sse_and_spaced_json_are_metered_exactly(
    tmp_path: Path, loose: FakeUpstream, stream: bool
) -> None:
    app = make_app(tmp_path, loose)
    messages = [{"role": "user", "content": f"How long is this message? {stream}"}]

    async def scenario(client: openai.AsyncOpenAI) -> tuple[str, dict[str, Any], str]:
        if not stream:
            raw = await client.chat.completions.with_raw_response.create(
                model="cloud-chat", messages=messages, temperature=0.3
            )
            answer = raw.parse()
            assert answer.usage is not None
            text = answer.choices[0].message.content or ""
            return raw.headers["x-thrifty-request-id"], answer.usage.model_dump(), text
        chunks = [
            chunk
            async for chunk in await client.chat.completions.create(
                model="cloud-chat",
                messages=messages,
                temperature=0.3,
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
        last = chunks[-1]
        assert last.choices == [] and last.usage is not None
        extra = last.model_extra or {}
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return extra["x_thrifty"]["request_id"], last.usage.model_dump(), text

    request_id, usage, text = run_with(app, scenario)
    assert text.startswith("Fake answer to a ") and text.endswith("-character message.")
    row = logged(app)[request_id]
    cost = expected_nanos(usage)
    assert cost > 0
    assert row["cost_nanos"] == cost
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert charged(app) == (usage["prompt_tokens"] + usage["completion_tokens"], cost)


def test_a_client_that_did_not_ask_for_usage_never_sees_a_chunk_without_choices(
    tmp_path: Path, loose: FakeUpstream
) -> None:
    app = make_app(tmp_path, loose)

    async def scenario(client: openai.AsyncOpenAI) -> list[Any]:
        stream = await client.chat.completions.create(
            model="cloud-chat", messages=[{"role": "user", "content": "hello"}], stream=True
        )
        return [chunk async for chunk in stream]

    chunks = run_with(app, scenario)
    assert chunks and all(chunk.choices for chunk in chunks)  # the usual chunk.choices[0] loop
    assert all(chunk.usage is None for chunk in chunks)
    finish = [c for c in chunks if c.choices[0].finish_reason is not None]
    assert len(finish) == 1 and finish[0] is chunks[-1]
    cost = (finish[0].model_extra or {})["x_thrifty"]
    row = logged(app)[cost["request_id"]]
    assert cost["cost_usd"] != "unknown" and row["cost_nanos"] > 0
    assert row["completion_tokens"] > 0  # metered from the usage the gateway asked for


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_answer_halves_behave_alike_whole_and_streamed(
    tmp_path: Path, loose: FakeUpstream, stream: bool
) -> None:
    """Answer moderation, PII restore and cache fill: one behaviour for both kinds of answer."""
    (tmp_path / "rude.txt").write_text(RUDE, encoding="utf-8")
    moderation = {"files": [str(tmp_path / "rude.txt")]}
    app = make_app(tmp_path, loose, privacy={"on_pii": "mask"}, moderation=moderation)

    async def ask(client: openai.AsyncOpenAI, content: str) -> tuple[str, str]:
        messages = [{"role": "user", "content": content}]
        if not stream:
            raw = await client.chat.completions.with_raw_response.create(
                model="cloud-chat", messages=messages, temperature=0
            )
            return raw.parse().choices[0].message.content or "", raw.headers["x-thrifty-route"]
        raw_stream = await client.chat.completions.with_raw_response.create(
            model="cloud-chat", messages=messages, temperature=0, stream=True
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in raw_stream.parse()]
        text = "".join(pieces)
        return text, raw_stream.headers["x-thrifty-route"]

    async def scenario(client: openai.AsyncOpenAI) -> list[tuple[str, str]]:
        return [
            await ask(client, "echo:well darn it, 该死的天气"),  # moderation masks the answer
            await ask(client, "echo:well darn it, 该死的天气"),  # the cache answers, masked too
            await ask(client, f"echo:call me on {PHONE} today"),  # masked for the cloud
        ]

    first, again, personal = run_with(app, scenario)
    assert first == ("well *** it, ***的天气", "cloud-chat")
    assert again == ("well *** it, ***的天气", "cache")
    assert personal == (f"call me on {PHONE} today", "cloud-chat")
    sent = loose.stats()["bodies"][-1]["messages"][-1]["content"]
    assert PHONE not in sent and "<PHONE_1>" in sent
    rows = sorted(logged(app).values(), key=lambda r: r["ts"])
    assert [r["route"] for r in rows] == ["cloud-chat", "cache", "cloud-chat"]
