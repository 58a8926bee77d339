"""End to end: personal data stays local, saturation spills to the cloud, faults fall back.

The "cloud" is a second real thrifty (Gemma 3 270M under the alias deepseek-chat) whose own
request log shows what it saw; the fault-injecting upstream is tests/fakes/upstream.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer, free_port

pytestmark = pytest.mark.slow

PII_PROMPTS = [
    "我的身份证号是11010519491231002X，帮我查一下社保。",
    "Please call me back on +86 138 1234 5678 about my order.",
    "我的银行卡号 6222 0202 0000 1234 562，为什么扣款失败？",
]


def _ask(
    client: openai.OpenAI, content: str, model: str = "auto", max_tokens: int = 16, **kw: object
) -> httpx.Headers:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=max_tokens, **kw
    )
    raw.parse()
    return raw.headers


def test_personal_data_never_reaches_the_cloud(
    client: openai.OpenAI, gateway: ThriftyServer, cloud: ThriftyServer
) -> None:
    seen_before = len(cloud.wait_rows("1=1", timeout=0.5))
    for prompt in PII_PROMPTS:
        for model in ("auto", "deepseek-chat"):
            headers = _ask(client, prompt, model)
            assert headers["x-thrifty-route"] == "local", headers["x-thrifty-reason"]
            row = gateway.row(headers["x-thrifty-request-id"])
            assert row["route"] == "local" and row["pii"]
    time.sleep(1.0)  # the cloud's writer flushes every 0.25 s: anything it saw would be there
    assert len(cloud.rows()) == seen_before


def test_saturated_local_spills_non_pii_to_cloud_but_never_pii(
    client: openai.OpenAI, gateway: ThriftyServer, cloud: ThriftyServer
) -> None:
    # the gateway's engine has 2 slots: hold both with long local generations
    blockers = [
        threading.Thread(
            target=_ask,
            args=(client, "Write a long story about a lighthouse keeper.", "local"),
            kwargs={"max_tokens": 400, "extra_body": {"ignore_eos": True}},
        )
        for _ in range(2)
    ]
    for t in blockers:
        t.start()
    deadline = time.monotonic() + 30
    while "thrifty_local_in_flight 2.0" not in httpx.get(gateway.url + "/metrics").text:
        assert time.monotonic() < deadline, "the local engine never filled up"
        time.sleep(0.05)
    seen_before = len(cloud.wait_rows("1=1", timeout=0.5))
    spilled = _ask(client, "What is the capital of France?")
    assert spilled["x-thrifty-route"] == "deepseek-chat"
    assert spilled["x-thrifty-reason"].startswith("rule:local-saturated")
    kept = _ask(client, PII_PROMPTS[1])  # waits for a local slot instead
    assert kept["x-thrifty-route"] == "local"
    for t in blockers:
        t.join(timeout=120)
    assert gateway.row(spilled["x-thrifty-request-id"])["route"] == "deepseek-chat"
    assert len(cloud.wait_rows("1=1", timeout=2)) == seen_before + 1


@pytest.fixture()
def flaky() -> Iterator[FakeUpstream]:
    with start_upstream() as upstream:
        yield upstream


@pytest.fixture()
def resilient(flaky: FakeUpstream) -> Iterator[ThriftyServer]:
    """A gateway whose `auto` tries the flaky cloud first, then the local model."""
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    config = {
        "local": {"parallel": 2, "ctx_size": 512},
        "upstreams": [
            {
                "name": "flaky",
                "base_url": flaky.url,
                "models": {"flaky-chat": "fake-chat"},
                "connect_timeout_s": 1,
                "timeout_s": 2,
                "max_retries": 1,
                "breaker": {"failures": 3, "window_s": 60, "cooldown_s": 2},
            },
            {"name": "gone", "base_url": closed, "models": {"gone-chat": "x"}, "max_retries": 1},
        ],
        "router": {
            "rules": [
                {"name": "gone-first", "when": {"header": {"x-test": "gone"}},
                 "target": ["gone-chat", "local"]},
                {"name": "cloud-first", "target": ["flaky-chat", "local"]},
            ]
        },
    }  # fmt: skip
    with ThriftyServer(config=config) as server:
        yield server


FAULTS = ["hang", "refuse", "http500", "http429", "malformed", "cut"]


@pytest.mark.parametrize("stream", [False, True])
def test_every_fault_falls_back_or_fails_cleanly(
    flaky: FakeUpstream, resilient: ThriftyServer, stream: bool
) -> None:
    client = openai.OpenAI(base_url=resilient.base_url, api_key="x", max_retries=0, timeout=30)
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "stream": stream}
    for fault in FAULTS:
        flaky.set_mode(fault, retry_after=0)
        # a hang falls back once the upstream's timeout_s runs out, well before the client's 30 s
        response = httpx.post(resilient.base_url + "/chat/completions",
                              json={"model": "auto", **body}, timeout=30)  # fmt: skip
        assert response.status_code == 200, (fault, response.text)
        assert response.headers["x-thrifty-route"] == "local", fault  # the fallback answered
        assert "-> local" in response.headers["x-thrifty-reason"], fault  # and says so
        # asked by name there is no fallback: an OpenAI-shaped error, in time
        flaky.set_mode(fault, retry_after=0)
        direct = httpx.post(resilient.base_url + "/chat/completions",
                            json={"model": "flaky-chat", **body}, timeout=30)  # fmt: skip
        if direct.status_code == 200 and stream:  # cut mid-stream after the first bytes
            assert '"error"' in direct.text, fault
        else:
            assert direct.status_code in (429, 502, 503, 504), (fault, direct.text)
            assert set(direct.json()["error"]) == {"message", "type", "param", "code"}
    refused = httpx.post(resilient.base_url + "/chat/completions", headers={"x-test": "gone"},
                         json={"model": "auto", **body}, timeout=30)  # fmt: skip
    assert refused.status_code == 200 and refused.headers["x-thrifty-route"] == "local"
    del client


def test_breaker_opens_then_recovers(flaky: FakeUpstream, resilient: ThriftyServer) -> None:
    body = {"model": "flaky-chat", "messages": [{"role": "user", "content": "hi"}]}
    flaky.set_mode("http500")
    for _ in range(3):
        httpx.post(resilient.base_url + "/chat/completions", json=body, timeout=30)
    metrics = httpx.get(resilient.url + "/metrics").text
    assert 'thrifty_upstream_breaker_state{upstream="flaky"} 2.0' in metrics
    asked = flaky.stats()["requests"]
    failing_fast = httpx.post(resilient.base_url + "/chat/completions", json=body, timeout=30)
    assert failing_fast.status_code == 503
    assert failing_fast.json()["error"]["code"] == "upstream_unavailable"
    assert flaky.stats()["requests"] == asked  # open: not even asked
    flaky.set_mode("ok")
    time.sleep(2.2)  # cooldown: the next request is the half-open probe
    recovered = httpx.post(resilient.base_url + "/chat/completions", json=body, timeout=30)
    assert recovered.status_code == 200
    metrics = httpx.get(resilient.url + "/metrics").text
    assert 'thrifty_upstream_breaker_state{upstream="flaky"} 0.0' in metrics
