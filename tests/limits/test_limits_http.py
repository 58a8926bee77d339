"""Limits through the HTTP app (in-process): the 429's shape, and two gateways sharing Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fakes.backends import IdleUpstream
from fakes.upstream import start_upstream
from support import ThriftyServer
from thrifty.api.app import build_app
from thrifty.backends import Registry, Reply, Target
from thrifty.config import Settings
from thrifty.costs.money import format_nanos, parse_nanos

CHAT = "/v1/chat/completions"


class Canned(IdleUpstream):
    """An upstream that answers every request with 10 prompt and 20 completion tokens."""

    name = "canned"

    async def complete(self, endpoint: Any, body: dict[str, Any]) -> Reply:
        message = {"role": "assistant", "content": "ok"}
        return Reply(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
            }
        )


def app_for(home: Path, **limits: Any) -> Any:
    settings = Settings(home=home, local={"enabled": False}, limits=limits)
    registry = Registry()
    registry.add(["deepseek-chat"], Target("deepseek-chat", Canned(), "deepseek-chat", "canned"))
    return build_app(settings, registry)


BODY = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


async def send(apps: list[Any], n: int) -> list[httpx.Response]:
    """`n` requests, round-robin over the apps, each app with its lifespan running."""
    async with _running(apps) as clients:
        return [await clients[i % len(clients)].post(CHAT, json=BODY) for i in range(n)]


class _running:
    def __init__(self, apps: list[Any]) -> None:
        self.apps = apps
        self.stack: list[Any] = []

    async def __aenter__(self) -> list[httpx.AsyncClient]:
        clients = []
        for app in self.apps:
            life = app.router.lifespan_context(app)
            await life.__aenter__()
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            self.stack += [life, client]
            clients.append(client)
        return clients

    async def __aexit__(self, *exc: Any) -> None:
        for item in reversed(self.stack):
            await item.__aexit__(None, None, None)


def test_over_the_limit_is_an_openai_shaped_429_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    app = app_for(tmp_path, default_tenant={"rpm": 2})
    responses = asyncio.run(send([app], 3))
    assert [r.status_code for r in responses] == [200, 200, 429]
    refused = responses[2]
    assert refused.json() == {
        "error": {
            "message": refused.json()["error"]["message"],
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert "tenant default" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-thrifty-request-id"].startswith("req-")


def test_daily_budget_uses_the_metered_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finisher charges what the meter priced: the budget runs out after as many requests."""
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    probe = asyncio.run(send([app_for(tmp_path / "probe")], 1))[0]
    cost = parse_nanos(probe.headers["x-thrifty-cost-usd"])  # one request's price, in nanos
    assert cost > 0
    budget = cost * 5 - 1  # the 5th request starts with some budget left; the 6th cannot
    app = app_for(tmp_path / "gw", tenants={"default": {"daily_usd": format_nanos(budget)}})
    responses = asyncio.run(send([app], 8))
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    assert "USD per day" in responses[5].json()["error"]["message"]


def test_two_gateways_configured_with_one_redis_share_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    limits = {"default_tenant": {"rpm": 7}, "redis_url": redis_url, "redis_prefix": "http"}
    apps = [app_for(tmp_path / "a", **limits), app_for(tmp_path / "b", **limits)]
    responses = asyncio.run(send(apps, 20))
    assert sum(r.status_code == 200 for r in responses) == 7
    assert all(r.headers.get("retry-after") for r in responses if r.status_code == 429)


@pytest.mark.slow
def test_two_thrifty_serve_processes_share_limits_through_redis(redis_url: str) -> None:
    """Two real `thrifty serve --no-local` processes, one Redis, the official openai client."""
    with start_upstream() as upstream:
        config = {
            "upstreams": [
                {"name": "fake", "base_url": upstream.url, "models": {"deepseek-chat": "fake"}}
            ],
            "limits": {
                "default_tenant": {"rpm": 12},
                "redis_url": redis_url,
                "redis_prefix": "e2e",
            },
        }
        with (
            ThriftyServer("--no-local", config=config) as a,
            ThriftyServer("--no-local", config=config) as b,
        ):
            statuses = []
            for i in range(30):
                server = (a, b)[i % 2]
                client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
                try:
                    client.chat.completions.create(
                        model="deepseek-chat",
                        messages=[{"role": "user", "content": "hi"}],
                        max_tokens=5,
                    )
                    statuses.append(200)
                except openai.RateLimitError as exc:
                    assert exc.response.headers["retry-after"]
                    assert exc.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
                    statuses.append(429)
            assert statuses.count(200) == 12 and statuses[:12] == [200] * 12
            assert set(statuses[12:]) == {429}
