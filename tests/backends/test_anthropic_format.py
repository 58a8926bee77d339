"""Anthropic Messages <-> OpenAI chat translation, offline (the SDK end to end is in tests/api)."""

from __future__ import annotations

import orjson
import pytest

from thrifty.backends.anthropic_format import (
    ChunkStream,
    EventStream,
    from_openai,
    to_completion,
    to_message,
    to_openai,
)
from thrifty.errors import InvalidRequest

TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_request_with_system_turns_tools_and_results() -> None:
    body = {
        "model": "local",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["\n\n"],
        "tools": [TOOL],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "北京天气？"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "北京"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "晴, 20°C"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    }
    out = to_openai(body)
    assert out["stop"] == ["\n\n"] and out["max_tokens"] == 64 and out["model"] == "local"
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assert out["tools"][0]["function"]["parameters"] == TOOL["input_schema"]
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    call = out["messages"][2]["tool_calls"][0]
    assert call["id"] == "toolu_1" and orjson.loads(call["function"]["arguments"]) == {
        "city": "北京"
    }
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "晴, 20°C"}


ONE_TURN = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
IMAGE_AS_TEXT = {"type": "image", "source": "http://127.0.0.1/a.png"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": []}, "messages"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        (
            {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages.0.content.0",
        ),
        (
            {
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "maybe"},
            },
            "tool_choice",
        ),
        # wrong types that used to raise AttributeError / TypeError (a 500)
        ({**ONE_TURN, "metadata": "u"}, "metadata"),
        ({**ONE_TURN, "tools": 5}, "tools"),
        (
            {**ONE_TURN, "messages": [{"role": "user", "content": [IMAGE_AS_TEXT]}]},
            "messages.0.content.0",
        ),
    ],
)
def test_bad_requests_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        to_openai(body)
    assert err.value.param == param


def test_answer_with_text_and_tool_calls() -> None:
    payload = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "content": "Let me look.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
    }
    message = to_message(payload, "local")
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0] == {"type": "text", "text": "Let me look."}
    assert message["content"][1]["input"] == {"city": "Oslo"}
    assert message["usage"]["input_tokens"] == 10 and message["usage"]["output_tokens"] == 4
    plain = to_message(
        {"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}]}, "m"
    )
    assert plain["stop_reason"] == "max_tokens"


def _events(raw: list[bytes]) -> list[dict]:
    out = []
    for frame in b"".join(raw).split(b"\n\n"):
        if frame:
            name, data = frame.split(b"\n")
            event = orjson.loads(data.removeprefix(b"data: "))
            assert name == b"event: " + event["type"].encode()
            out.append(event)
    return out


def test_stream_events_follow_anthropics_order() -> None:
    stream = EventStream("local", input_tokens=7)
    base = {"object": "chat.completion.chunk"}
    raw = stream.chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    raw += stream.chunk({**base, "choices": [{"index": 0, "delta": {"content": "你好"}}]})
    call = {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    raw += stream.chunk({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    args = {"index": 0, "function": {"arguments": '{"city": "Oslo"}'}}
    raw += stream.chunk({**base, "choices": [{"index": 0, "delta": {"tool_calls": [args]}}]})
    raw += stream.chunk(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    )
    raw += stream.finish({"prompt_tokens": 7, "completion_tokens": 5})
    events = _events(raw)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[2]["delta"] == {"type": "text_delta", "text": "你好"}
    assert events[4]["content_block"]["type"] == "tool_use" and events[4]["index"] == 1
    assert events[5]["delta"]["partial_json"] == '{"city": "Oslo"}'
    assert events[7]["delta"]["stop_reason"] == "tool_use"
    assert events[7]["usage"]["output_tokens"] == 5


def test_openai_request_to_an_anthropic_upstream_and_back() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        "tool_choice": "required",
        "stop": "END",
    }
    out = from_openai(body, "claude-x", 256)
    assert out["system"] == "Be brief." and out["max_tokens"] == 256
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][2]["content"][0]["type"] == "tool_result"
    assert out["tool_choice"] == {"type": "any"} and out["stop_sequences"] == ["END"]
    message = {
        "id": "msg_1",
        "content": [{"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"a": 1}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    completion = to_completion(message, "claude-x")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and completion["usage"]["total_tokens"] == 5
    assert orjson.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"a": 1}
    chunks = ChunkStream("claude-x", 0)
    out_chunks = [
        c
        for e in (
            {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 3}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hi"},
            },
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 1},
            },
        )
        for c in chunks.event(e)
    ]
    assert out_chunks[1]["choices"][0]["delta"] == {"content": "hi"}
    assert out_chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert out_chunks[3]["usage"]["total_tokens"] == 4
