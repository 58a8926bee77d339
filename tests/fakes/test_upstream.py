"""The fake upstream does what failure tests rely on: each mode, `times`, stats, and the CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from fakes.upstream import FakeUpstream, free_port, start_upstream

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]  # 11 chars


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with start_upstream() as up:
        yield up


@pytest.fixture(autouse=True)
def fresh(upstream: FakeUpstream) -> None:
    upstream.set_mode("ok")
    upstream.reset()


@pytest.fixture()
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.url, api_key="unused", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture()
def http(upstream: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url, timeout=5) as c:
        yield c


def test_chat_answers_with_deepseek_usage(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    answer = client.chat.completions.create(model="fake-chat", messages=HELLO)
    assert answer.choices[0].message.content == "Fake answer to a 11-character message."
    assert answer.choices[0].finish_reason == "stop"
    usage = answer.usage
    assert usage is not None and usage.completion_tokens == 6
    extra = usage.model_extra or {}
    assert extra["prompt_cache_hit_tokens"] == 0
    assert extra["prompt_cache_miss_tokens"] == usage.prompt_tokens
    stats = upstream.stats()
    assert stats["requests"] == 1
    assert stats["bodies"] == [{"model": "fake-chat", "messages": HELLO}]


def test_a_repeated_prompt_hits_the_prompt_cache(client: openai.OpenAI) -> None:
    for _ in range(2):
        answer = client.chat.completions.create(model="fake-chat", messages=HELLO)
    assert answer.usage is not None
    extra = answer.usage.model_extra or {}
    assert extra["prompt_cache_hit_tokens"] == answer.usage.prompt_tokens > 0
    assert extra["prompt_cache_miss_tokens"] == 0


def test_max_tokens_cuts_the_answer(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="fake-chat", messages=HELLO, max_tokens=2)
    assert answer.choices[0].message.content == "Fake answer"
    assert answer.choices[0].finish_reason == "length"


def test_chat_streams_with_a_final_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="fake-chat",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Fake answer to a 11-character message."
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=HELLO, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completions_endpoint(client: openai.OpenAI) -> None:
    answer = client.completions.create(model="fake-chat", prompt="Once upon")
    assert answer.choices[0].text == "Fake answer to a 9-character message."
    stream = client.completions.create(model="fake-chat", prompt="Once upon", stream=True)
    assert "".join(c.choices[0].text for c in stream) == answer.choices[0].text


def test_embeddings_and_the_recorded_headers(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    result = client.embeddings.create(model="fake-embedder", input=["a", "bcd"])
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert result.data[1].embedding[0] == 3.0  # the input's length: answers tell inputs apart
    stats = upstream.stats()
    assert stats["bodies"][-1]["input"] == ["a", "bcd"]
    assert stats["headers"][-1]["content-type"] == "application/json"


def test_models_and_health(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    assert [m.id for m in client.models.list()] == ["fake-chat"]
    assert httpx.get(upstream.root + "/health").json() == {"status": "ok"}


def test_http500(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.set_mode("http500")
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fake-chat", messages=HELLO)
    assert info.value.status_code == 500


def test_http429_says_when_to_retry(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.set_mode("http429", retry_after=2)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="fake-chat", messages=HELLO)
    assert info.value.response.headers["retry-after"] == "2"


def test_times_limits_a_fault_then_ok_returns(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.set_mode("http500", times=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="fake-chat", messages=HELLO)
    assert client.chat.completions.create(model="fake-chat", messages=HELLO).choices
    stats = upstream.stats()
    assert stats["requests"] == 3 and stats["fault"]["mode"] == "ok"


def test_slow_waits_then_answers(http: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set_mode("slow", delay_s=0.3)
    started = time.perf_counter()
    response = http.post("/chat/completions", json={"messages": HELLO})
    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_hang_never_answers(http: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set_mode("hang")
    with pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json={"messages": HELLO}, timeout=0.3)
    assert upstream.stats()["requests"] == 1


def test_refuse_drops_the_connection(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.set_mode("refuse")
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="fake-chat", messages=HELLO)


def test_malformed_is_200_without_json(http: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set_mode("malformed")
    response = http.post("/chat/completions", json={"messages": HELLO})
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_cut_stream_raises_in_the_client(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.set_mode("cut")
    stream = client.chat.completions.create(model="fake-chat", messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2


def test_cut_whole_answer_raises(http: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.set_mode("cut")
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/chat/completions", json={"messages": HELLO})


def test_bad_fault_is_refused(upstream: FakeUpstream) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        upstream.set_mode("explode")


def test_stats_keep_the_last_50_bodies(http: httpx.Client, upstream: FakeUpstream) -> None:
    for n in range(55):
        http.post("/completions", json={"prompt": str(n), "max_tokens": 1})
    stats = upstream.stats()
    assert stats["requests"] == 55
    assert [b["prompt"] for b in stats["bodies"]] == [str(n) for n in range(5, 55)]
    upstream.reset()
    assert upstream.stats()["requests"] == 0


def test_cli_prints_ready_once_listening() -> None:
    port = free_port()
    script = Path(__file__).with_name("upstream.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", str(port), "--mode", "http500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})
        assert response.status_code == 500
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
