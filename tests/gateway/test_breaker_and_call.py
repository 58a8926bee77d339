"""The circuit breaker, and the call stage's retries and fallbacks, on scripted backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes.backends import IdleUpstream
from thrifty.backends import Reply, StreamStats, Target
from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest, Overloaded, UpstreamError, UpstreamTimeout
from thrifty.gateway.breaker import CircuitBreaker, State
from thrifty.gateway.call import Caller, backoff_s, upstream_body


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_k_failures_in_window_then_probes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, window_s=10, cooldown_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 11  # the first failure leaves the window
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is State.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is State.OPEN and not breaker.allow()
    clock.now += 5
    assert breaker.state is State.HALF_OPEN
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # and only one
    breaker.record_failure()  # the probe failed: open again for a full cooldown
    assert breaker.state is State.OPEN
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is State.CLOSED and breaker.allow()


class Scripted(IdleUpstream):
    """A backend that plays a script: each entry is an exception to raise or a reply to return."""

    def __init__(self, name: str, script: list[Any]) -> None:
        self.name = name
        self.script = list(script)
        self.bodies: list[dict[str, Any]] = []

    def _next(self, body: dict[str, Any]) -> Any:
        self.bodies.append(body)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def complete(self, endpoint: Any, body: dict[str, Any]) -> Reply:
        return Reply(self._next(body))

    async def stream(
        self, endpoint: Any, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        for payload in self._next(body):  # one event per network read
            if isinstance(payload, BaseException):
                raise payload
            yield [payload]


OK = {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 1}}


def ctx_for(*targets: Target, stream: bool = False) -> RequestContext:
    ctx = RequestContext("chat", {"model": "auto", "messages": [], "thrifty": {}}, "auto", stream)
    ctx.targets = list(targets)
    return ctx


def caller(*names: str, retries: int = 2) -> tuple[Caller, list[float]]:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    breakers = {n: CircuitBreaker(failures=3, window_s=60, cooldown_s=30) for n in names}
    return Caller(breakers, dict.fromkeys(names, retries), sleep=sleep), slept


def test_retries_retryable_errors_honouring_retry_after() -> None:
    backend = Scripted("a", [UpstreamError("5xx", retryable=True, retry_after=1.5), OK])
    call, slept = caller("a")
    ctx = ctx_for(Target("cloud", backend, "m-1", upstream="a"))
    reply = asyncio.run(call.complete(ctx))
    assert reply.payload is OK and slept == [1.5]
    assert ctx.route == "cloud" and ctx.answered_by is not None
    assert backend.bodies[0]["model"] == "m-1" and "thrifty" not in backend.bodies[0]


def test_no_retry_on_client_errors_and_no_fallback() -> None:
    first = Scripted("a", [InvalidRequest("bad")])
    second = Scripted("b", [OK])
    call, _ = caller("a", "b")
    ctx = ctx_for(Target("a", first, "m", upstream="a"), Target("b", second, "m", upstream="b"))
    with pytest.raises(InvalidRequest):
        asyncio.run(call.complete(ctx))
    assert second.bodies == []


def test_falls_back_after_timeout_and_overload() -> None:
    first = Scripted("a", [UpstreamTimeout("slow")])
    local = Scripted("local", [Overloaded("full")])
    last = Scripted("c", [OK])
    call, slept = caller("a", "c")
    ctx = ctx_for(
        Target("a", first, "m", upstream="a"),
        Target("local", local, "m"),
        Target("c", last, "m", upstream="c"),
    )
    asyncio.run(call.complete(ctx))
    assert ctx.route == "c" and slept == []  # timeouts are not retried: fallback at once


def test_open_breaker_skips_the_upstream() -> None:
    backend = Scripted("a", [UpstreamError("down", retryable=True)] * 3)
    backup = Scripted("b", [OK, OK])
    call, _ = caller("a", "b", retries=2)
    targets = (Target("a", backend, "m", upstream="a"), Target("b", backup, "m", upstream="b"))
    asyncio.run(call.complete(ctx_for(*targets)))
    assert call.breakers["a"].state is State.OPEN
    ctx = ctx_for(*targets)
    asyncio.run(call.complete(ctx))
    assert ctx.route == "b" and len(backend.bodies) == 3  # not asked again while open


def test_stream_retries_before_first_byte_only() -> None:
    cut = UpstreamError("cut", retryable=True)
    backend = Scripted("a", [[cut], [b"one", cut]])
    call, slept = caller("a")
    ctx = ctx_for(Target("a", backend, "m", upstream="a"), stream=True)

    async def run() -> list[bytes]:
        first, rest = await call.stream(ctx, StreamStats())
        got = list(first or [])
        with pytest.raises(UpstreamError):
            async for batch in rest:
                got.extend(batch)
        return got

    assert asyncio.run(run()) == [b"one"]
    assert len(slept) == 1  # one retry before the first byte, none after it
    assert backend.bodies[0]["stream_options"] == {"include_usage": True}


def test_backoff_is_jittered_and_capped() -> None:
    assert all(0 <= backoff_s(n, None) <= 4 for n in range(10))
    assert backoff_s(0, 60) == 10.0


def test_upstream_body_leaves_client_body_alone() -> None:
    ctx = ctx_for(stream=False)
    body = upstream_body(ctx, Target("x", Scripted("x", []), "real-model"))
    assert body["model"] == "real-model" and ctx.body["model"] == "auto"
