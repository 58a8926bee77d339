"""Rate limits and budgets, in-process and in a real Redis: the same scenarios, a fake clock."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from thrifty.config import LimitsSettings
from thrifty.context import KeyPolicy, RequestContext
from thrifty.errors import RateLimited
from thrifty.gateway.limits import Counters, InProcessCounters, Limiter, Refusal, Reservation
from thrifty.gateway.limits_redis import RedisCounters

DAY = 86400.0
T0 = 20833 * DAY + 3600  # one hour into a UTC day (2027-01-14)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def redis_counters(url: str, clock: Clock | None) -> RedisCounters:
    import redis.asyncio

    ms = None if clock is None else (lambda: int(clock() * 1000))
    return RedisCounters(redis.asyncio.Redis.from_url(url), prefix=f"t{id(clock)}", clock=ms)


MakeCounters = Callable[[Clock], Counters]


@pytest.fixture(params=["in-process", "redis"])
def make_counters(request: pytest.FixtureRequest) -> MakeCounters:
    """A factory (call it inside the test's event loop) of counters that read `clock`."""
    if request.param == "in-process":
        return lambda clock: InProcessCounters(clock)
    url = request.getfixturevalue("redis_url")
    return lambda clock: redis_counters(url, clock)


def limiter(counters: Counters, **settings: Any) -> Limiter:
    return Limiter(LimitsSettings(**settings), counters, estimate_nanos=lambda ctx, p, c: 0)


def key(**limits: Any) -> KeyPolicy:
    return KeyPolicy(key_id="key_a", tenant="acme", role="user", **limits)


def request(policy: KeyPolicy | None, prompt: int = 10, max_tokens: int = 10) -> RequestContext:
    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
    body["max_tokens"] = max_tokens
    ctx = RequestContext("chat", body, "local", False, key=policy, tenant="acme")
    ctx.prompt_tokens = prompt  # what the estimate would say, made exact for the test
    return ctx


async def admitted(lim: Limiter, ctx: RequestContext) -> bool:
    try:
        await lim.on_request(ctx)
    except RateLimited:
        return False
    return True


def charge(lim: Limiter, ctx: RequestContext, tokens: int, nanos: int = 0) -> None:
    ctx.usage = {"prompt_tokens": tokens // 2, "completion_tokens": tokens - tokens // 2}
    ctx.cost_nanos = nanos
    lim.on_finish(ctx)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


# --- per minute --------------------------------------------------------------------------------


def test_rpm_is_a_sliding_window_with_retry_after(make_counters: MakeCounters) -> None:
    clock = Clock()

    async def scenario() -> None:
        lim = limiter(make_counters(clock))
        policy = key(rpm=3)
        for i in range(3):
            clock.now = T0 + i * 10  # admitted at 0 s, 10 s, 20 s
            assert await admitted(lim, request(policy))
        clock.now = T0 + 30
        with pytest.raises(RateLimited) as refused:
            await lim.on_request(request(policy))
        error = refused.value
        assert error.status == 429 and error.code == "rate_limit_exceeded"
        assert error.type == "rate_limit_error"
        assert error.headers["retry-after"] == "30"  # the 0 s admission leaves the window at 60 s
        assert error.headers["x-thrifty-limit"] == "key:key_a:rpm"
        assert "requests per minute" in error.message
        clock.now = T0 + 59.9
        assert not await admitted(lim, request(policy))
        clock.now = T0 + 60.001
        assert await admitted(lim, request(policy))  # one slot freed, exactly one
        assert not await admitted(lim, request(policy))
        await lim.close()

    run(scenario)


def test_tpm_reserves_the_estimate_and_charges_the_real_usage(make_counters: MakeCounters) -> None:
    clock = Clock()

    async def scenario() -> None:
        lim = limiter(make_counters(clock))
        policy = key(tpm=100)
        first = request(policy, prompt=20, max_tokens=40)  # reserves 60
        assert await admitted(lim, first)
        assert not await admitted(lim, request(policy, prompt=20, max_tokens=40))  # 60 + 60 > 100
        charge(lim, first, 10)  # it really used 10 tokens
        await lim.counters.drain()
        assert await admitted(lim, request(policy, prompt=20, max_tokens=70))  # 10 + 90 <= 100
        clock.now += 5
        with pytest.raises(RateLimited) as refused:
            await lim.on_request(request(policy, prompt=1, max_tokens=1))
        assert refused.value.headers["retry-after"] == "55"  # the first admission expires first
        with pytest.raises(RateLimited) as too_big:
            await lim.on_request(request(policy, prompt=50, max_tokens=51))
        assert "Request too large" in too_big.value.message
        await lim.close()

    run(scenario)


def test_a_refusal_by_the_tenant_counts_against_neither(make_counters: MakeCounters) -> None:
    clock = Clock()

    async def scenario() -> None:
        lim = limiter(make_counters(clock), tenants={"acme": {"rpm": 2}})
        policy = key(rpm=3)
        assert await admitted(lim, request(policy))
        assert await admitted(lim, request(policy))
        with pytest.raises(RateLimited) as refused:
            await lim.on_request(request(policy))
        assert refused.value.headers["x-thrifty-limit"] == "tenant:acme:rpm"
        other = KeyPolicy(key_id="key_b", tenant="beta", role="user", rpm=3)
        ctx = request(other)
        ctx.tenant = "beta"  # not limited as a tenant: only its key's limits apply
        for _ in range(3):
            assert await admitted(lim, ctx)
        # key_a's third admission was refused by its tenant, so it still has one left
        unlimited_tenant = limiter(lim.counters)
        assert await admitted(unlimited_tenant, request(policy))
        assert not await admitted(unlimited_tenant, request(policy))
        await lim.close()

    run(scenario)


# --- per day -----------------------------------------------------------------------------------


def test_daily_tokens_stop_at_the_quota_and_reset_the_next_utc_day(
    make_counters: MakeCounters,
) -> None:
    clock = Clock()

    async def scenario() -> None:
        lim = limiter(make_counters(clock))
        policy = key(daily_tokens=1000)
        used = 0
        while True:
            ctx = request(policy, prompt=100, max_tokens=200)
            if not await admitted(lim, ctx):
                break
            charge(lim, ctx, 250)
            await lim.counters.drain()
            used += 250
        assert 1000 <= used < 1000 + 250  # stops within one request of the quota
        with pytest.raises(RateLimited) as refused:
            await lim.on_request(request(policy))
        assert refused.value.headers["retry-after"] == str(int(DAY - 3600))  # next UTC midnight
        clock.now = T0 + DAY
        assert await admitted(lim, request(policy))
        await lim.close()

    run(scenario)


def test_hard_cap_bounds_a_burst_of_concurrent_requests(make_counters: MakeCounters) -> None:
    """In-flight reservations count; a burst never takes the day past 2× its quota."""
    clock = Clock()

    async def scenario() -> None:
        lim = limiter(make_counters(clock))  # hard_cap: 2 by default
        policy = key(daily_tokens=1000)
        big = request(policy, prompt=100, max_tokens=2000)  # could use 2100 > 2000: never
        with pytest.raises(RateLimited) as refused:
            await lim.on_request(big)
        assert "Request too large" in refused.value.message
        first = request(policy, prompt=100, max_tokens=200)
        assert await admitted(lim, first)  # 300 reserved: 700 of the quota left
        with pytest.raises(RateLimited) as over_cap:  # 300 + 1800 > 2000
            await lim.on_request(request(policy, prompt=100, max_tokens=1700))
        assert over_cap.value.headers["retry-after"] == "1"
        lim.on_finish(first)  # released: it never reached a model
        await lim.counters.drain()
        burst = [request(policy, prompt=100, max_tokens=500) for _ in range(10)]
        results = [await admitted(lim, ctx) for ctx in burst]
        assert results == [True, True, False, False, False, False, False, False, False, False]
        # 600 + 600 reserved: 1200, under 2000. A third would start with none of the quota left.
        with pytest.raises(RateLimited) as busy:
            await lim.on_request(request(policy, prompt=1, max_tokens=1))
        assert busy.value.headers["retry-after"] == "1"  # in-flight requests may free some
        charge(lim, burst[0], 50)
        await lim.counters.drain()
        assert await admitted(lim, request(policy, prompt=100, max_tokens=500))
        await lim.close()

    run(scenario)


def test_hard_cap_multiple_is_configurable(make_counters: MakeCounters) -> None:
    clock = Clock()

    async def scenario() -> None:
        lim = limiter(make_counters(clock), hard_cap=1.0)  # the quota itself is the ceiling
        policy = key(daily_tokens=1000)
        assert await admitted(lim, request(policy, prompt=100, max_tokens=800))
        assert not await admitted(lim, request(policy, prompt=100, max_tokens=100))  # 1100 > 1000
        assert await admitted(lim, request(policy, prompt=50, max_tokens=50))  # exactly 1000
        await lim.close()

    run(scenario)


def test_daily_usd_budget_stops_spending_within_one_request_cost(
    make_counters: MakeCounters,
) -> None:
    clock = Clock()
    budget = 1_000_000  # 0.001 USD
    rng = random.Random(6)

    async def scenario() -> None:
        counters = make_counters(clock)
        lim = Limiter(LimitsSettings(), counters, estimate_nanos=lambda ctx, p, c: 30_000)
        policy = key(daily_usd_nanos=budget)
        spent, costs = 0, []
        for _ in range(1000):
            waves = [request(policy) for _ in range(rng.randint(1, 4))]  # some concurrency
            admitted_now = [ctx for ctx in waves if await admitted(lim, ctx)]
            if not admitted_now:
                break
            for ctx in admitted_now:
                cost = rng.randint(20_000, 30_000)  # within the estimate
                costs.append(cost)
                charge(lim, ctx, 10, cost)
                spent += cost
            await lim.counters.drain()
        assert budget <= spent < budget + max(costs)
        with pytest.raises(RateLimited) as refused:
            await lim.on_request(request(policy))
        assert "USD per day" in refused.value.message and "0.001000000" in refused.value.message
        await lim.close()

    run(scenario)


def test_unknown_usage_is_charged_the_reservation_and_failures_nothing(
    make_counters: MakeCounters,
) -> None:
    clock = Clock()

    async def scenario() -> None:
        lim = limiter(make_counters(clock))
        policy = key(tpm=100)
        left = request(policy, prompt=10, max_tokens=40)  # reserves 50
        assert await admitted(lim, left)
        left.answered_by = object()  # type: ignore[assignment]  # a model worked; no usage seen
        lim.on_finish(left)
        failed = request(policy, prompt=10, max_tokens=40)
        assert await admitted(lim, failed)
        lim.on_finish(failed)  # never reached a model: releases its 50
        await lim.counters.drain()
        assert await admitted(lim, request(policy, prompt=10, max_tokens=40))  # 50 + 50
        assert not await admitted(lim, request(policy, prompt=1, max_tokens=1))
        await lim.close()

    run(scenario)


def test_requests_without_limits_skip_the_counters() -> None:
    class Exploding(InProcessCounters):
        async def admit(self, *args: Any) -> Reservation | Refusal:
            raise AssertionError("counted")

    lim = limiter(Exploding())
    asyncio.run(lim.on_request(request(None)))
    asyncio.run(lim.on_request(request(key(models=frozenset({"local"})))))
    assert lim.in_flight == 0


def test_unreachable_store_fails_open_or_closed() -> None:
    class Down(InProcessCounters):
        async def admit(self, *args: Any) -> Reservation | Refusal:
            raise ConnectionError("redis is down")

    assert asyncio.run(limiter(Down()).on_request(request(key(rpm=1)))) is None
    from thrifty.gateway.limits import QuotaUnavailable

    with pytest.raises(QuotaUnavailable) as refused:
        asyncio.run(limiter(Down(), fail_open=False).on_request(request(key(rpm=1))))
    assert refused.value.status == 503


# --- two gateways, one Redis -------------------------------------------------------------------


def test_two_gateways_sharing_redis_admit_exactly_rpm(redis_url: str) -> None:
    """200 requests spread over two limiters (each its own connection pool) within a minute."""

    async def scenario() -> list[bool]:
        a = limiter(redis_counters(redis_url, None))  # Redis's own clock, as in production
        b = limiter(redis_counters(redis_url, None))
        policy = KeyPolicy(key_id="key_shared", tenant="t", role="user", rpm=60)

        async def send(i: int) -> bool:
            await asyncio.sleep(i * 0.005)  # spread over a second
            ctx = request(policy)
            ok = await admitted(a if i % 2 else b, ctx)
            if ok:
                (a if i % 2 else b).on_finish(ctx)
            return ok

        results = await asyncio.gather(*(send(i) for i in range(200)))
        for lim in (a, b):
            await lim.close()
        return list(results)

    results = asyncio.run(scenario())
    assert sum(results) == 60
    assert results[:60] == [True] * 60  # first come, first served


def test_two_gateway_processes_share_a_daily_budget(redis_url: str, tmp_path: Path) -> None:
    """Two OS processes spend one key's daily USD budget at once: it stops within one request."""
    script = tmp_path / "spend.py"
    script.write_text(
        f"""
import asyncio, os, sys
import redis.asyncio
from thrifty.config import LimitsSettings
from thrifty.errors import RateLimited
from thrifty.context import KeyPolicy, RequestContext
from thrifty.gateway.limits import Limiter
from thrifty.gateway.limits_redis import RedisCounters

async def main() -> None:
    counters = RedisCounters(redis.asyncio.Redis.from_url({redis_url!r}), prefix="procs")
    lim = Limiter(LimitsSettings(), counters, estimate_nanos=lambda ctx, p, c: 5000)
    policy = KeyPolicy(key_id="k", tenant="t", role="user", daily_usd_nanos=200_000)
    spent = 0
    refused = 0
    open(sys.argv[1] + "." + sys.argv[2], "w").close()
    while not os.path.exists(sys.argv[1]):  # start together
        await asyncio.sleep(0.005)
    while refused < 20:
        await asyncio.sleep(0.001)
        ctx = RequestContext("chat", {{"max_tokens": 5}}, "local", False, key=policy)
        ctx.prompt_tokens = 5
        try:
            await lim.on_request(ctx)
        except RateLimited:
            refused += 1
            await asyncio.sleep(0.01)
            continue
        ctx.usage = {{"prompt_tokens": 5, "completion_tokens": 5}}
        ctx.cost_nanos = 4000
        lim.on_finish(ctx)
        spent += 4000
    await lim.close()
    print(spent)

asyncio.run(main())
"""
    )
    import sys

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(go), str(i)], stdout=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "the spenders did not start"
        time.sleep(0.01)
    go.touch()
    spent = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert spent[0] > 0 and spent[1] > 0  # both spent some of it
    assert 200_000 <= sum(spent) < 200_000 + 4000
