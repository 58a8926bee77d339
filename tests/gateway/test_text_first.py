"""Streams begin with text: chunks that carry nothing are dropped, their role moves on."""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.gateway.textfirst import TextFirst, may_carry_nothing


def chunk(**delta: Any) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_the_role_chunk_and_empty_chunks_are_dropped_and_the_role_rides_on_the_text() -> None:
    first = TextFirst()
    events = [
        chunk(role="assistant", content=None),
        chunk(content=""),
        chunk(content="Paris"),
        chunk(content=" is"),
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "c", "choices": [], "usage": {"total_tokens": 3}},
    ]
    sent = [c for e in events if (c := first.chunk(e)) is not None]
    assert [c["choices"][0]["delta"] if c["choices"] else "usage" for c in sent] == [
        {"role": "assistant", "content": "Paris"},
        {"content": " is"},
        {},
        "usage",
    ]


def test_tool_calls_logprobs_and_completions_text_count_as_something() -> None:
    first = TextFirst()
    call = chunk(role="assistant", tool_calls=[{"index": 0, "function": {"name": "f"}}])
    assert first.chunk(call) is not None
    logprobs = {"index": 0, "delta": {"content": ""}, "logprobs": {"content": [{"t": 1}]}}
    assert first.chunk({"choices": [logprobs]}) is not None
    assert first.chunk({"choices": [{"index": 0, "text": "", "finish_reason": None}]}) is None
    assert first.chunk({"choices": [{"index": 0, "text": "ok", "finish_reason": None}]})


def test_the_byte_check_never_misses_an_empty_chunk() -> None:
    for event in (
        chunk(role="assistant", content=None),
        chunk(content=""),
        {"choices": [{"index": 0, "text": "", "finish_reason": None}]},
    ):
        assert may_carry_nothing(orjson.dumps(event))
        assert may_carry_nothing(b'{"choices": [{"delta": {"content": ""}}]}')  # spaced JSON
    assert not may_carry_nothing(orjson.dumps(chunk(content="Paris")))
