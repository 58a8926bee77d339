"""Bad input gets a clear 4xx in OpenAI's error shape, in-process (no model needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import database_url, query
from thrifty.api.app import build_app
from thrifty.config import Settings

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.fixture()
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    settings = Settings(
        home=tmp_path,
        local={"enabled": False},
        embeddings={"local_model": None},
        limits={"max_body_bytes": 10_000, "max_messages": 3, "max_tokens": 100},
    )
    yield build_app(settings)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "local"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0"),
        ({"messages": HI, "temperature": 3}, "temperature"),
        ({"messages": HI, "top_p": -1}, "top_p"),
        ({"messages": HI, "n": 200}, "n"),
        ({"messages": HI, "logprobs": True, "top_logprobs": 25}, "top_logprobs"),
        ({"messages": HI, "top_logprobs": 2}, "top_logprobs"),
        ({"messages": HI, "max_tokens": 0}, "max_tokens"),
        ({"messages": HI, "stop": ["a", "b", "c", "d", "e"]}, None),
        ({"messages": HI, "stream": "yes please"}, "stream"),
        ({"messages": HI, "response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": HI * 4}, "messages"),
        ({"messages": HI, "max_tokens": 101}, "max_tokens"),
    ],
)
def test_invalid_requests_are_400(app: Any, body: dict[str, Any], param: str | None) -> None:
    response = call(app, "POST", CHAT, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    if param is not None:
        assert error["param"] == param


def test_not_json_and_not_an_object(app: Any) -> None:
    for content in (b"{not json", b"[1, 2]", b""):
        response = call(app, "POST", CHAT, content=content)
        assert response.status_code == 400
        assert "JSON" in response.json()["error"]["message"]


def test_unknown_model_is_404_model_not_found(app: Any) -> None:
    response = call(app, "POST", CHAT, json={"model": "gpt-9", "messages": HI})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert "auto" in response.json()["error"]["message"]  # the router's names are models too
    assert response.headers["x-thrifty-request-id"].startswith("req-")


def test_body_too_large_is_413(app: Any) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 20_000}]}
    response = call(app, "POST", CHAT, json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unknown_route_and_method_are_openai_shaped(app: Any) -> None:
    missing = call(app, "GET", "/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = call(app, "GET", CHAT)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_completions_validate_too(app: Any) -> None:
    response = call(app, "POST", "/v1/completions", json={"model": "local", "prompt": []})
    assert response.status_code == 400


def test_every_refusal_is_in_the_request_log(app: Any, tmp_path: Path) -> None:
    call(app, "POST", CHAT, json={"messages": []})
    call(app, "POST", CHAT, json={"model": "gpt-9", "messages": HI})
    sql = "SELECT model, status, error_code FROM requests ORDER BY ts"
    rows = query(database_url(tmp_path), sql)
    assert [tuple(row.values()) for row in rows] == [
        ("", 400, None),
        ("gpt-9", 404, "model_not_found"),
    ]


def test_openapi_document(app: Any) -> None:
    schema = call(app, "GET", "/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert "ChatCompletionRequest" in schema["components"]["schemas"]
    assert "/v1/chat/completions" in schema["paths"]


def test_readyz_without_backends_and_metrics(app: Any) -> None:
    assert call(app, "GET", "/readyz").json() == {"ready": True, "checks": {}}
    assert call(app, "GET", "/metrics").headers["content-type"].startswith("text/plain")
