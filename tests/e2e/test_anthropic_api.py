"""`/v1/messages` with the official anthropic SDK: the local model (tools included) and an upstream,
streamed and not, through the same gateway (route headers, request log, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import jsonschema
import orjson
import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer

pytestmark = pytest.mark.slow

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def server(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    config = {
        "local": {"parallel": 2, "ctx_size": 2048},
        "upstreams": [
            {"name": "cloud", "base_url": fake.url, "models": {"deepseek-chat": "deepseek-chat"},
             "max_retries": 0}
        ],
        "router": {"rules": [{"name": "cloud-first", "target": ["deepseek-chat", "local"]}]},
    }  # fmt: skip
    with ThriftyServer(config=config) as srv:
        yield srv


@pytest.fixture()
def client(server: ThriftyServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def test_text_with_system_and_turns_on_the_local_model(
    client: anthropic.Anthropic, server: ThriftyServer
) -> None:
    raw = client.messages.with_raw_response.create(
        model="local",
        max_tokens=16,
        system="You are terse.",
        extra_body={"temperature": 0},  # greedy: sampled, a tiny model may end at once with no text
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "你好吗？"}]},
        ],
    )
    message = raw.parse()
    assert message.role == "assistant" and message.content[0].type == "text"
    assert message.content[0].text  # type: ignore[union-attr]
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 16
    assert raw.headers["x-thrifty-route"] == "local"
    row = server.row(raw.headers["x-thrifty-request-id"])
    assert row["route"] == "local" and row["completion_tokens"] == message.usage.output_tokens


def test_tool_use_and_tool_result_round_trip(client: anthropic.Anthropic) -> None:
    ask: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(
        model="local",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=ask,
    )
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_weather"
    jsonschema.validate(uses[0].input, WEATHER["input_schema"])
    second = client.messages.create(
        model="local",
        max_tokens=24,
        extra_body={"temperature": 0},
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "none"},
        messages=[
            *ask,
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "18C, sunny"}
                ],
            },
        ],
    )
    assert second.content and second.content[0].type == "text"


def test_streams_text_and_tool_use_events(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="local",
        max_tokens=16,
        extra_body={"temperature": 0},
        messages=[{"role": "user", "content": "Say hello"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0
    with client.messages.stream(
        model="local",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = next(b for b in final.content if b.type == "tool_use")
    jsonschema.validate(use.input, WEATHER["input_schema"])


def test_through_an_upstream_streamed_and_not(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="deepseek-chat", max_tokens=32, messages=[{"role": "user", "content": "echo:pong"}]
    )
    assert message.content[0].text == "pong"  # type: ignore[union-attr]
    with client.messages.stream(
        model="deepseek-chat", max_tokens=32, messages=[{"role": "user", "content": "echo:ping"}]
    ) as stream:
        assert "".join(stream.text_stream) == "ping"


def test_errors_in_anthropics_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model="local",
            max_tokens=0,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert bad.value.body["type"] == "error"  # type: ignore[index]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(
            model="claude-nonexistent", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )


def test_a_fallback_shows_in_the_reason(server: ThriftyServer, fake: FakeUpstream) -> None:
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
    fake.set_mode("http500", times=1)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    finally:
        fake.set_mode("ok")
    assert raw.headers["x-thrifty-route"] == "local"
    reason = raw.headers["x-thrifty-reason"]
    assert reason == "rule:cloud-first; fallback deepseek-chat -> local: upstream_error", reason


def test_an_upstream_spoken_to_in_anthropics_api(server: ThriftyServer) -> None:
    """A gateway whose upstream has `api: anthropic` (here: the first thrifty's /v1/messages),
    used with the openai SDK: requests go out in Anthropic's shape and come back in OpenAI's."""
    import openai

    config = {
        "local": {"enabled": False},
        "embeddings": {"local_model": None},
        "upstreams": [
            {"name": "claude", "api": "anthropic", "base_url": server.url,
             "models": {"claude-small": "local"}, "max_retries": 0}
        ],
    }  # fmt: skip
    with ThriftyServer(config=config) as front:
        client = openai.OpenAI(base_url=front.base_url, api_key="x", max_retries=0, timeout=120)
        reply = client.chat.completions.create(
            model="claude-small",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            max_tokens=8,
            temperature=0,
        )
        assert reply.choices[0].message.content and reply.choices[0].finish_reason
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        function = {"name": "get_weather", "parameters": WEATHER["input_schema"]}
        tools: Any = [{"type": "function", "function": function}]
        called = client.chat.completions.create(
            model="claude-small",
            messages=[{"role": "user", "content": "Weather in Rome?"}],
            tools=tools,
            tool_choice="required",
            max_tokens=100,
        )
        calls = called.choices[0].message.tool_calls
        assert called.choices[0].finish_reason == "tool_calls" and calls
        jsonschema.validate(orjson.loads(calls[0].function.arguments), WEATHER["input_schema"])
        stream = client.chat.completions.create(
            model="claude-small",
            messages=[{"role": "user", "content": "Say hi"}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        rows = front.wait_rows("route = ?", ("claude-small",))
        assert rows and rows[0]["completion_tokens"] == reply.usage.completion_tokens
