"""Inputs that used to end in a 500 are 400s in OpenAI's shape, in-process (no model needed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from fakes.backends import IdleUpstream
from thrifty.api.app import build_app
from thrifty.cli import main
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
    yield build_app(Settings(home=tmp_path, local={"enabled": False}))


def tool(**function: Any) -> dict[str, Any]:
    return {"type": "function", "function": function}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"max_tokens": "8"}, "max_tokens"),
        ({"max_completion_tokens": "8"}, "max_completion_tokens"),
        ({"temperature": "0.5"}, "temperature"),
        ({"top_p": "1"}, "top_p"),
        ({"n": "2"}, "n"),
        ({"seed": "42"}, "seed"),
        ({"max_tokens": 8.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"stream": "true"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({"logprobs": "true"}, "logprobs"),
        ({"tools": [{"type": "function"}]}, "tools.0.function"),
        ({"tools": [tool(description="no name")]}, "tools.0.function.name"),
        ({"tools": [tool(name="has spaces in it")]}, "tools.0.function.name"),
        ({"tools": [tool(name="f", parameters="not an object")]}, "tools.0.function.parameters"),
        ({"tools": ["lookup"]}, "tools.0"),
        ({"tools": [{"type": "browser"}]}, "tools.0"),
        # unions: the client's path, no member names (was stop.str, messages.0.content.str)
        ({"stop": 5}, "stop"),
        ({"stop": ["a", 5]}, "stop.1"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages.0.content.0.text",
        ),
    ],
)
def test_wrong_types_are_400(app: Any, extra: dict[str, Any], param: str) -> None:
    response = call(app, "POST", CHAT, json={"model": "deepseek-chat", "messages": HI, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_numbers_where_numbers_belong_still_pass_validation(app: Any) -> None:
    body = {"model": "nope", "messages": HI, "max_tokens": 8, "temperature": 1, "top_p": 0.5}
    body["tools"] = [tool(name="lookup_order", parameters={"type": "object"})]
    assert call(app, "POST", CHAT, json=body).status_code == 404  # validated, then routed


@pytest.mark.parametrize("depth", [65, 254, 500, 1023, 1100])
def test_deep_json_is_400_before_anything_recurses(app: Any, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    raw = '{"model": "local", "messages": [{"role": "user", "content": "hi"}], "metadata": '
    response = call(app, "POST", CHAT, content=raw + nested + "}")
    assert response.status_code == 400, response.text
    assert "nests deeper" in response.json()["error"]["message"]


def test_moderate_nesting_is_fine(app: Any) -> None:
    nested: Any = "x"
    for _ in range(30):
        nested = {"a": nested}
    body = {"model": "nope", "messages": HI, "metadata": nested}
    assert call(app, "POST", CHAT, content=json.dumps(body)).status_code == 404


def test_a_chunked_body_over_the_cap_is_413_while_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    app = build_app(
        Settings(home=tmp_path, local={"enabled": False}, limits={"max_body_bytes": 1000})
    )
    sent: list[int] = []

    async def chunks() -> Any:  # no Content-Length: the cap must hold while reading
        for _ in range(1000):
            sent.append(1)
            yield b" " * 100

    response = call(app, "POST", CHAT, content=chunks())
    assert response.status_code == 413
    assert len(sent) < 1000


@pytest.mark.parametrize("since", ["99999999d", "999999999999w", "1e9w"])
def test_usage_windows_out_of_range_are_400(app: Any, since: str) -> None:
    response = call(app, "GET", f"/v1/usage?since={since}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "since"


def test_usage_cli_prints_one_line_for_a_window_out_of_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path))
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["usage", "--since", "99999999d"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "before the year 1" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ],
)
@pytest.mark.parametrize("model", ["local", "deepseek-chat"])
def test_media_the_local_model_cannot_take_is_400(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: dict[str, Any], model: str
) -> None:
    """To the local model, or to a cloud alias that privacy keeps local (unscannable content)."""
    from thrifty.backends import LOCAL_CAPABILITIES, Registry, Target

    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    registry = Registry()
    local = Target("local", IdleUpstream(), "local", capabilities=LOCAL_CAPABILITIES)  # type: ignore[arg-type]
    registry.add(["local"], local)
    cloud = Target("deepseek-chat", IdleUpstream(), "deepseek-chat", "deepseek")  # type: ignore[arg-type]
    registry.add(["deepseek-chat"], cloud)
    app = build_app(Settings(home=tmp_path, local={"enabled": False}), registry)
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, part]}]
    response = call(app, "POST", CHAT, json={"model": model, "messages": messages})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "unsupported_feature"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"completion_window": ["24h"]}, "completion_window"),  # unhashable: was a TypeError
        ({"endpoint": {"/v1/chat/completions": 1}}, "endpoint"),
        ({"input_file_id": {}}, "input_file_id"),
        ({"x_thrifty": "now"}, "x_thrifty"),
        ({"metadata": [1]}, "metadata"),
    ],
)
def test_batch_fields_of_the_wrong_type_are_400(
    app: Any, change: dict[str, Any], param: str
) -> None:
    body = {"input_file_id": "file-x", "endpoint": CHAT, "completion_window": "24h", **change}
    response = call(app, "POST", "/v1/batches", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("change", "param"),
    [({"rpm": 2**70}, "rpm"), ({"tpm": 2**63}, "tpm"), ({"daily_usd": 1e300}, "daily_usd")],
)
def test_key_limits_past_64_bits_are_400(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], param: str
) -> None:
    from thrifty.store.keys import KeySpec, KeyStore

    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    settings = Settings(home=tmp_path, local={"enabled": False})
    tmp_path.mkdir(exist_ok=True)
    with KeyStore(settings.database_url) as store:
        _, secret = store.create(KeySpec("ops", role="admin"), "cli:test")
    headers = {"authorization": f"Bearer {secret}"}
    body = {"tenant": "t", **change}
    response = call(build_app(settings), "POST", "/admin/keys", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_a_console_cookie_or_token_of_any_text_is_just_wrong(tmp_path: Path) -> None:
    from thrifty.api.console._app import Sessions, same

    sessions = Sessions(tmp_path)
    assert sessions.verify("k.99999999999.\xe9\xe9", time.time()) is None  # was a TypeError
    assert not same("\xe9t\xe9", sessions.csrf("c"))
    assert same(sessions.csrf("c"), sessions.csrf("c"))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"stop_sequences": 5}, "stop_sequences"),  # validated as the chat request's `stop`
        ({"tools": [{"name": "has spaces"}]}, "tools.0.name"),  # as tools.0.function.name
        ({"metadata": {"user_id": ["x"]}}, None),  # str() of anything is a user: no error
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_anthropic_errors_name_the_field_in_the_message(
    app: Any, change: dict[str, Any], named: str | None
) -> None:
    """Anthropic's error envelope has no param: the message starts with the field's name,
    as the client spelled it."""
    body = {"model": "nope", "max_tokens": 5, "messages": HI, **change}
    response = call(app, "POST", "/v1/messages", json=body)
    if named is None:
        assert response.status_code == 404  # valid, then routed: no such model
        return
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{named}: "), error


def test_a_batch_line_whose_url_is_not_a_string_is_a_problem_not_an_error() -> None:
    from thrifty.api.batches import parse_jsonl

    line = {"custom_id": "a", "method": "POST", "url": {"x": 1}, "body": {}}
    _, problems = parse_jsonl(json.dumps(line), 10)  # was TypeError: unhashable type: 'dict'
    assert problems == [
        "line 1: url must be one of /v1/chat/completions, /v1/completions, /v1/embeddings"
    ]


def test_a_review_verdict_on_an_item_id_past_64_bits_is_404(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thrifty.api.console._app import Sessions

    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    app = build_app(Settings(home=tmp_path, local={"enabled": False}))
    csrf = Sessions(tmp_path).csrf(None)  # a keyless gateway: no session, its token
    form = {"csrf": csrf, "verdict": "ok"}
    response = call(app, "POST", f"/console/review/{2**64}", data=form)
    assert response.status_code == 404, response.text  # was OverflowError in the store: a 500
