"""A thinking model's reasoning sent back by the client is scanned and masked like content.

In tool-calling turns with thinking on, DeepSeek may need the assistant's `reasoning_content`
back; it can hold personal data (restored for the client from the placeholders the cloud saw),
so it must count for `privacy.on_pii` and be masked before it leaves again.
"""

from __future__ import annotations

from thrifty.gateway.pii import Masker, PIIDetector

PHONE = "13812345678"


def conversation() -> list[dict[str, object]]:
    return [
        {"role": "user", "content": "帮我查一下订单"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": f"用户的手机号是 {PHONE}，先查订单。",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "已发货"},
    ]


def test_personal_data_in_returned_reasoning_is_found() -> None:
    assert "phone" in PIIDetector().scan_messages(conversation())


def test_personal_data_in_returned_reasoning_is_masked() -> None:
    messages = conversation()
    masked, mapping = Masker(PIIDetector()).mask_messages(messages)
    reasoning = masked[1]["reasoning_content"]
    assert PHONE not in reasoning and "<PHONE_1>" in reasoning
    assert mapping == {"<PHONE_1>": PHONE}
    assert messages[1]["reasoning_content"] == f"用户的手机号是 {PHONE}，先查订单。"  # untouched


def _chunk(finish: str | None = None, **delta: str | None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish}]}


def test_streamed_reasoning_and_content_are_restored_apart() -> None:
    from thrifty.gateway.privacy import StreamRestorer

    restorer = StreamRestorer({"<PHONE_1>": PHONE})
    chunks = [
        _chunk(reasoning_content="call <PHO", content=None),
        _chunk(reasoning_content="NE_1> now <", content=None),  # ends on what may be a placeholder
        _chunk(reasoning_content=None, content="dial <PHONE"),
        _chunk(content="_1>"),
        _chunk("stop"),
    ]
    out = [restorer.chunk(chunk)["choices"][0]["delta"] for chunk in chunks]  # type: ignore[index]
    reasoning = [d.get("reasoning_content") or "" for d in out]
    content = [d.get("content") or "" for d in out]
    assert "".join(reasoning) == f"call {PHONE} now <"
    assert "".join(content) == f"dial {PHONE}"
    # the reasoning's held tail goes out with the first content, not after the answer
    assert reasoning[2] == "<" and content[2] == "dial "


def test_whole_reasoning_is_restored() -> None:
    from thrifty.gateway.privacy import unmask_payload

    payload = {
        "choices": [
            {"index": 0, "message": {"content": "<PHONE_1>", "reasoning_content": "is <PHONE_1>"}}
        ]
    }
    unmask_payload(payload, {"<PHONE_1>": PHONE})
    assert payload["choices"][0]["message"] == {
        "content": PHONE,
        "reasoning_content": f"is {PHONE}",
    }
