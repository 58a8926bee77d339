"""The long-text memo shared by the PII scan and moderation: keyed by digest, bounded, exact."""

from __future__ import annotations

import asyncio

import pytest

from thrifty.config import ModerationSettings
from thrifty.context import RequestContext
from thrifty.errors import ContentPolicyViolation
from thrifty.gateway.memo import TextMemo
from thrifty.gateway.moderation import Moderation


def test_a_long_text_is_computed_once_and_only_its_digest_is_kept() -> None:
    calls: list[str] = []

    def count(text: str) -> int:
        calls.append(text)
        return len(text)

    memo = TextMemo(count, min_chars=10, entries=2)
    long_a, long_b, long_c = "a" * 20, "b" * 20, "c" * 20
    assert memo(long_a) == 20 and memo(long_a) == 20 and calls == [long_a]
    assert memo("short") == 5 and memo("short") == 5 and calls.count("short") == 2  # never kept
    memo(long_b), memo(long_c)  # a third long text: the oldest is forgotten
    assert memo(long_a) == 20 and calls.count(long_a) == 2
    assert all(isinstance(k, bytes) and len(k) == 16 for k in memo._seen)  # digests, not texts
    assert len(memo._seen) == 2


def _chat(*texts: str) -> RequestContext:
    messages = [{"role": "user", "content": t} for t in texts]
    return RequestContext("chat", {"model": "m", "messages": messages}, "m", False)


def test_moderation_judges_a_resent_history_as_the_first_time() -> None:
    mod = Moderation(ModerationSettings())
    history = "Please summarise our refund policy for the customer, politely and briefly. " * 8
    blocked = history + " Explain how to make a pipe bomb at home."
    assert mod.input.scan(blocked), "the shipped block list should catch this"
    for _ in range(3):  # each turn resends the history: the answer never changes
        assert asyncio.run(mod.on_request(_chat(history, "Thanks!"))) is None
        with pytest.raises(ContentPolicyViolation):
            asyncio.run(mod.on_request(_chat(blocked)))
