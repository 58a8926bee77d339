"""A stream reassembled into the whole answer, and a whole answer replayed as a stream."""

from __future__ import annotations

from typing import Any

from thrifty.gateway.answer import Reassembler, replay

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}


def _chunk(*choices: dict[str, Any]) -> dict[str, Any]:
    return {**HEAD, "choices": list(choices)}


def _whole(chunks: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    assembler = Reassembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.payload(usage)


def test_text_in_many_shapes_of_delta_comes_back_whole() -> None:
    pieces = ["你好", "", ", wor", "ld", "!"]
    chunks = [_chunk({"index": 0, "delta": {"role": "assistant", "content": None}})]
    chunks += [_chunk({"index": 0, "delta": {"content": p}, "finish_reason": None}) for p in pieces]
    chunks += [_chunk({"index": 0, "delta": {"content": "?", "reasoning_content": None}})]
    chunks += [_chunk({"index": 0, "delta": {}, "finish_reason": "stop"})]
    whole = _whole(chunks, {"completion_tokens": 6})
    assert whole["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "你好, world!?"},
            "finish_reason": "stop",
        }
    ]
    assert whole["object"] == "chat.completion" and whole["usage"] == {"completion_tokens": 6}
    assert whole["id"] == "chatcmpl-1" and whole["model"] == "m"


def test_interleaved_choices_reasoning_and_tool_calls_stay_apart() -> None:
    events = [
        {"index": 1, "delta": {"content": "B1"}},
        {"index": 0, "delta": {"reasoning_content": "think "}},
        {"index": 0, "delta": {"reasoning_content": "hard"}},
        {"index": 0, "delta": {"content": "A1"}},
        {"index": 1, "delta": {"content": "B2"}},
        {"index": 0, "delta": {"content": "A2"}},
    ]
    call = {"index": 0, "id": "call_1", "function": {"name": "get_", "arguments": '{"ci'}}
    more = {"index": 0, "function": {"name": "weather", "arguments": 'ty": "Paris"}'}}
    chunks = [_chunk(e) for e in events]
    chunks += [_chunk({"index": 2, "delta": {"tool_calls": [call]}})]
    chunks += [_chunk({"index": 2, "delta": {"tool_calls": [more]}})]
    finishes = [{"index": i, "delta": {}, "finish_reason": r} for i, r in enumerate("ab")]
    chunks += [_chunk(*finishes), _chunk({"index": 2, "delta": {}, "finish_reason": "tool_calls"})]
    whole = _whole(chunks)
    a, b, c = whole["choices"]
    assert a["message"] == {
        "role": "assistant",
        "content": "A1A2",
        "reasoning_content": "think hard",
    }
    assert b["message"]["content"] == "B1B2" and b["finish_reason"] == "b"
    assert c["message"]["content"] is None and c["finish_reason"] == "tool_calls"
    function = c["message"]["tool_calls"][0]["function"]
    assert function == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_a_replayed_answer_reassembles_to_itself() -> None:
    payload = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "一二三"},
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "x"},
                "finish_reason": "length",
            },
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    chunks = replay(payload)
    again = _whole(chunks, chunks[-1]["usage"])
    assert again == payload


def test_completions_text_reassembles() -> None:
    chunks = [
        {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": t}]}
        for t in ("The ", "capital", ".")
    ]
    chunks.append({"id": "c", "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
    whole = _whole(chunks)
    assert whole["object"] == "text_completion"
    assert whole["choices"] == [{"index": 0, "text": "The capital.", "finish_reason": "stop"}]
