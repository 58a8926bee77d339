"""End to end: an upstream's malformed, truncated, dripping or throttled answer is its failure.

Two fake clouds behind a real `thrifty serve`; a rule sends `model: auto` to the faulty one
first and the healthy one second. Every fault ends in the healthy one's answer (the fallback
ran), in time; with no fallback configured, the client gets a 502-class error, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def clouds() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with start_upstream() as faulty, start_upstream(model_name="backup") as backup:
        yield faulty, backup


def upstream(name: str, fake: FakeUpstream, alias: str) -> dict[str, object]:
    return {
        "name": name,
        "base_url": fake.url,
        "models": {alias: "fake-chat"},
        "max_retries": 1,
        "timeout_s": 2,
        "stream_idle_timeout_s": 2,
        "connect_timeout_s": 2,
        "breaker": {"failures": 1000},
    }


@pytest.fixture(scope="module")
def gateway(clouds: tuple[FakeUpstream, FakeUpstream]) -> Iterator[ThriftyServer]:
    faulty, backup = clouds
    config = {
        "local": {"enabled": False},
        "cache": {"enabled": False},
        "upstreams": [
            upstream("faulty", faulty, "faulty-chat"),
            upstream("backup", backup, "backup-chat"),
        ],
        "router": {"rules": [{"name": "fallback", "target": ["faulty-chat", "backup-chat"]}]},
    }
    with ThriftyServer(config=config) as server:
        yield server


def ask(server: ThriftyServer, model: str, stream: bool) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": model, "messages": HELLO, "stream": stream},
        timeout=60,
    )
    return response, time.monotonic() - started


FAULTS = [
    ("cut", {}),  # a body cut short of its Content-Length / a stream cut after two events
    ("malformed", {}),  # not JSON / a first event that is not JSON
    ("null_choice", {}),  # {"choices": [null]}
    ("drip", {"delay_s": 0.5}),  # a few bytes every half second: past the 2 s deadline
    ("http429", {"retry_after": 120}),  # asked to wait far longer than we would
]


# a stream that failed after its first bytes reached the client cannot fall back (cut, drip):
# those end in an error event, tested below
FALLBACKS = [(mode, params, stream) for mode, params in FAULTS for stream in (False, True)]
FALLBACKS = [f for f in FALLBACKS if not (f[2] and f[0] in ("cut", "drip"))]


@pytest.mark.parametrize(
    ("mode", "params", "stream"), FALLBACKS, ids=[f"{m}-{s}" for m, _, s in FALLBACKS]
)
def test_a_faulty_answer_falls_back_to_the_next_target(
    clouds: tuple[FakeUpstream, FakeUpstream],
    gateway: ThriftyServer,
    mode: str,
    params: dict[str, float],
    stream: bool,
) -> None:
    faulty, _ = clouds
    faulty.set_mode(mode, **params)
    try:
        response, took = ask(gateway, "auto", stream)
    finally:
        faulty.set_mode("ok")
    assert response.status_code == 200, response.text
    assert response.headers["x-thrifty-route"] == "backup-chat"
    assert took < 15  # not the 120 s Retry-After, not the whole drip
    if stream:
        assert "data: [DONE]" in response.text


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("mode", "params"), FAULTS, ids=[m for m, _ in FAULTS])
def test_without_a_fallback_a_faulty_answer_is_a_502_class_error(
    clouds: tuple[FakeUpstream, FakeUpstream],
    gateway: ThriftyServer,
    mode: str,
    params: dict[str, float],
    stream: bool,
) -> None:
    faulty, _ = clouds
    if mode == "drip" and stream:
        params = {"delay_s": 3}  # a gap between events longer than stream_idle_timeout_s
    faulty.set_mode(mode, **params)
    try:
        response, took = ask(gateway, "faulty-chat", stream)
    finally:
        faulty.set_mode("ok")
    assert took < 15
    if stream and response.status_code == 200:
        # bytes had reached the client: the stream ends with an error event, not silently
        assert '"error"' in response.text
        return
    assert response.status_code in (429, 502, 503, 504), response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
