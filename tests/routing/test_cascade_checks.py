"""The cascade's checks on answers: each fails what it should and passes what it should."""

from __future__ import annotations

from typing import Any

from thrifty.config import CascadeTarget
from thrifty.gateway.cascade import as_chunks, failed_check, first_body, strip_logprobs


def reply(text: str, logprobs: list[float] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "t", "logprob": v} for v in logprobs]}
    return {"id": "x", "choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


RULE = CascadeTarget(cascade=["local", "deepseek-chat"], labels=["refund", "退款", "other"])


def test_each_check() -> None:
    assert failed_check(RULE, reply("refund", [-0.1, -0.2]), {}) is None
    assert failed_check(RULE, reply(" 退款。"), {}) is None  # no logprobs: nothing to check
    assert failed_check(RULE, reply("refund", [-3.0, -2.5]), {}) == "logprob"
    assert failed_check(RULE, reply("I think it is a refund"), {}) == "labels"
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "required": ["label"]}},
    }
    unlabelled = CascadeTarget(cascade=["local", "deepseek-chat"], checks=["schema", "code"])
    assert (
        failed_check(unlabelled, reply('{"label": "refund"}'), {"response_format": schema}) is None
    )
    assert failed_check(unlabelled, reply('{"other": 1}'), {"response_format": schema}) == "schema"
    assert (
        failed_check(unlabelled, reply("not json"), {"response_format": {"type": "json_object"}})
        == "schema"
    )
    assert failed_check(unlabelled, reply("```python\ndef f(:\n```"), {}) == "code"
    assert failed_check(unlabelled, reply("```python\ndef f():\n    return 1\n```"), {}) is None
    assert failed_check(unlabelled, reply("plain prose, no code"), {}) is None


def test_first_attempt_body_and_what_the_client_gets() -> None:
    body = first_body(RULE, {"model": "m", "stream": True, "stream_options": {}, "messages": []})
    assert body == {"model": "m", "messages": [], "logprobs": True}
    payload = strip_logprobs(reply("refund", [-0.1]), asked=False)
    assert "logprobs" not in payload["choices"][0]
    chunks = as_chunks(reply("退款"))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "退款"}
    assert chunks[1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[2]["usage"]["completion_tokens"] == 1


def test_a_code_block_cut_off_by_max_tokens_fails_the_code_check() -> None:
    rule = CascadeTarget(cascade=["local", "deepseek-chat"], checks=["code"])
    assert failed_check(rule, reply("```python\ndef add_two_numbers(num1"), {}) == "code"
    assert failed_check(rule, reply("```python\ndef add(a, b):\n    return a + b\n"), {}) is None
