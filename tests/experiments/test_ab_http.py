"""Experiments and feedback over HTTP, in-process, with the fake upstream as the cloud.

`chat-ab` splits users between two upstream aliases on the fake upstream: control answers with
`deepseek-chat`, `cheap` with `cheap-chat`. No local model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import query
from thrifty.api.app import build_app
from thrifty.config import Settings
from thrifty.store.ab import load_ab_report
from thrifty.store.keys import KeySpec, KeyStore

CHAT = "/v1/chat/completions"
T = TypeVar("T")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


def make_settings(tmp_path: Path, upstream: FakeUpstream, **variants: Any) -> Settings:
    return Settings(
        home=tmp_path,
        local={"enabled": False},
        upstreams=[
            {"name": "deepseek", "base_url": upstream.url,
             "models": {"deepseek-chat": "deepseek-chat"}, "max_retries": 0, "timeout_s": 5},
            {"name": "cheap", "base_url": upstream.url, "models": {"cheap-chat": "cheap"},
             "max_retries": 0, "timeout_s": 5},
        ],
        experiments={"chat-ab": {"variants": variants or {
            "control": {"model": "deepseek-chat", "weight": 0.5},
            "cheap": {"model": "cheap-chat", "weight": 0.5},
        }}},
        store={"flush_interval_s": 0.01},
    )  # fmt: skip


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeUpstream) -> Settings:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    upstream.set_mode("ok")
    return make_settings(tmp_path, upstream)


def serve(settings: Settings, steps: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    app = build_app(settings)

    async def go() -> T:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                result = await steps(client)
            app.state.runtime.request_log.flush()
            return result

    return asyncio.run(go())


def chat(user: str | None = None, model: str = "chat-ab") -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if user is not None:
        body["user"] = user
    return body


def rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in query(settings.database_url, sql, params)]


def test_requests_get_a_sticky_variant_header_and_log_row(settings: Settings) -> None:
    async def steps(client: httpx.AsyncClient) -> list[httpx.Response]:
        replies = [await client.post(CHAT, json=chat("alice")) for _ in range(5)]
        replies += [await client.post(CHAT, json=chat(f"user-{i}")) for i in range(40)]
        replies.append(await client.post(CHAT, json=chat(model="deepseek-chat")))
        return replies

    replies = serve(settings, steps)
    assert all(r.status_code == 200 for r in replies), replies[0].text
    alice = {r.headers["x-thrifty-variant"] for r in replies[:5]}
    assert len(alice) == 1
    routes = {"chat-ab:control": "deepseek-chat", "chat-ab:cheap": "cheap-chat"}
    for reply in replies[:-1]:
        assert reply.headers["x-thrifty-route"] == routes[reply.headers["x-thrifty-variant"]]
    assert {r.headers["x-thrifty-variant"] for r in replies[:-1]} == set(routes)
    assert "x-thrifty-variant" not in replies[-1].headers  # not an experiment's name

    logged = dict(rows(settings, "SELECT id, variant FROM requests"))
    for reply in replies:
        assert logged[reply.headers["x-thrifty-request-id"]] == reply.headers.get(
            "x-thrifty-variant"
        )
    model_of = dict(rows(settings, "SELECT variant, model FROM requests WHERE variant IS NOT NULL"))
    assert model_of == {"chat-ab:control": "deepseek-chat", "chat-ab:cheap": "cheap-chat"}

    report = load_ab_report(settings.database_url, "chat-ab", 0)
    assert sum(v.requests for v in report.variants) == 45
    (control,) = [v for v in report.variants if v.variant == "control"]
    assert control.requests == sum(v == "chat-ab:control" for v in logged.values())


def test_feedback_200_400_404(settings: Settings) -> None:
    async def steps(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
        answer = await client.post(CHAT, json=chat("alice"))
        rid = answer.headers["x-thrifty-request-id"]
        post = "/v1/feedback"
        return {
            "answer": answer,
            "ok": await client.post(post, json={"request_id": rid, "score": 4, "thumbs": "up"}),
            "again": await client.post(post, json={"request_id": rid, "converted": True}),
            "comment": await client.post(post, json={"request_id": rid, "comment": "great"}),
            "unknown": await client.post(post, json={"request_id": "req-nope", "score": 1}),
            "thumbs": await client.post(post, json={"request_id": rid, "thumbs": "sideways"}),
            "empty": await client.post(post, json={"request_id": rid}),
            "extra": await client.post(post, json={"request_id": rid, "score": 1, "x": 1}),
            "string score": await client.post(post, json={"request_id": rid, "score": "5"}),
            "not json": await client.post(post, content=b"{nope"),
            "array": await client.post(post, json=[1]),
            "get": await client.get(post),
        }

    got = serve(settings, steps)
    rid = got["answer"].headers["x-thrifty-request-id"]
    assert got["ok"].status_code == 200, got["ok"].text
    assert got["ok"].json()["request_id"] == rid
    assert got["again"].status_code == got["comment"].status_code == 200
    assert got["unknown"].status_code == 404
    assert got["unknown"].json()["error"]["param"] == "request_id"
    for name in ("thumbs", "empty", "extra", "string score", "not json", "array"):
        reply = got[name]
        assert reply.status_code == 400, (name, reply.text)
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
        assert reply.json()["error"]["type"] == "invalid_request_error"
    assert got["thumbs"].json()["error"]["param"] == "thumbs"
    assert got["get"].status_code == 405
    stored = rows(
        settings, "SELECT request_id, score, thumbs, converted, comment FROM feedback ORDER BY id"
    )
    assert stored == [
        (rid, 4.0, 1, None, None),
        (rid, None, None, 1, None),
        (rid, None, None, None, "great"),
    ]
    report = load_ab_report(settings.database_url, "chat-ab", 0)
    (arm,) = [v for v in report.variants if v.requests]
    assert (arm.score.mean, arm.thumbs_up.k, arm.conversion.k) == (4.0, 1, 1)


def test_feedback_is_scoped_to_the_callers_tenant(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    with KeyStore(settings.database_url) as store:
        _, acme = store.create(KeySpec("acme"), "cli:test")
        _, other = store.create(KeySpec("other"), "cli:test")
        _, viewer = store.create(KeySpec("acme", role="viewer"), "cli:test")

    def auth(secret: str) -> dict[str, str]:
        return {"authorization": f"Bearer {secret}"}

    async def steps(client: httpx.AsyncClient) -> list[httpx.Response]:
        answer = await client.post(CHAT, json=chat(), headers=auth(acme))
        body = {"request_id": answer.headers["x-thrifty-request-id"], "thumbs": "down"}
        return [
            answer,
            await client.post("/v1/feedback", json=body, headers=auth(other)),
            await client.post("/v1/feedback", json=body, headers=auth(viewer)),
            await client.post("/v1/feedback", json=body),
            await client.post("/v1/feedback", json=body, headers=auth(acme)),
        ]

    answer, other_tenant, as_viewer, anonymous, own = serve(settings, steps)
    assert answer.status_code == 200
    assert "x-thrifty-variant" in answer.headers  # no user: assigned by the key id
    assert (other_tenant.status_code, as_viewer.status_code) == (404, 403)
    assert (anonymous.status_code, own.status_code) == (401, 200)


def test_a_variant_with_an_unknown_model_stops_the_start(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    settings = make_settings(
        tmp_path,
        upstream,
        control={"model": "deepseek-chat", "weight": 0.9},
        lora={"model": "local-lora", "weight": 0.1},
    )
    with pytest.raises(ValueError, match="unknown model 'local-lora'"):
        build_app(settings)
