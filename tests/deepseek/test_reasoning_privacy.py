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
