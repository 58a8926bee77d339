"""Streams begin with text: through a real `thrifty serve`, with the official openai client,
every chunk a client sees carries something, and the first one carries text and the role."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    config = {
        "local": {"parallel": 1, "ctx_size": 1024},
        "upstreams": [{"name": "fake", "base_url": fake.url, "models": {"deepseek-chat": "fake"}}],
    }
    with ThriftyServer(config=config) as running:  # the shipped word lists watch answers
        yield running


@pytest.mark.parametrize("model", ["local", "deepseek-chat"])
def test_every_chunk_carries_something_and_the_first_carries_text(
    server: ThriftyServer, model: str
) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=120)
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello to the world in a few words."}],
        max_tokens=16,
        temperature=0,  # greedy: sampled, a tiny model may end at once with no text
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c for c in stream if c.choices]  # the usage chunk has none
    assert chunks
    first = chunks[0].choices[0]
    assert first.delta.content and first.delta.role == "assistant"
    for c in chunks:
        choice = c.choices[0]
        assert choice.delta.content or choice.finish_reason or choice.delta.tool_calls, c
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()
