"""Rate limits and budgets: requests and tokens per minute, tokens and money per UTC day.

Every request is held to two subjects' limits: its API key's (`ctx.key`, a KeyPolicy) and its
tenant's (`limits.tenants`, else `limits.default_tenant`). It must fit both; a refusal is a 429
`rate_limit_exceeded` with `Retry-After`, and counts against neither.

Admission is the last stage before the call, so that a request another stage refuses never counts,
and so that the route is known when the money a request may cost is estimated:

- requests/min: at most `rpm` admissions in any sliding 60 s (an exact log, not fixed windows);
- tokens/min: a request reserves `prompt estimate + max_tokens` (`limits.reserve_completion_tokens`
  when it names none); the reservations and charges of the last 60 s must fit `tpm`;
- tokens and money per UTC day: a request may start while `used + reserved < quota` (some quota is
  left) and only if `used + reserved + its reservation <= quota × hard_cap`. Its money reservation
  is the price of its tokens on the dearest cloud model among its targets (local answers reserve
  nothing: their cost is engine time, known only after). So spending stops within one request's
  cost of the quota, and no burst of concurrent requests passes the hard cap (2×: 200%).

When the answer is done, the stage's finish half (the meter has priced it by then) swaps the
reservation for what the request really used: `ctx.usage` tokens and `ctx.cost_nanos`. A request
that reached a model but whose usage is unknown (its client left mid-stream) is charged its
reservation.

The counters live in-process (`InProcessCounters`: one replica, a few µs per request) or in Redis
(`limits_redis.RedisCounters`: every replica, exact, one Lua script per admission and per charge).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol

from thrifty.backends import Reply
from thrifty.config import LimitsSettings
from thrifty.context import KeyPolicy, RequestContext
from thrifty.costs.money import convert_nanos, format_nanos
from thrifty.costs.usage import TokenUsage
from thrifty.errors import RateLimited, ThriftyError
from thrifty.gateway.quota import (
    Check,
    Counters,
    Refusal,
    Reservation,
    TenantQuota,
    limited,
)
from thrifty.gateway.router import prompt_tokens
from thrifty.gateway.stage import Stage

if TYPE_CHECKING:
    from thrifty.costs.pricebook import PriceBook

logger = logging.getLogger(__name__)

WINDOW_S = 60.0
DAY_S = 86400
_SWEEP_AT = 4096  # reservations held before looking for ones whose request never finished
_STALE_S = 3600.0
LIMIT_NAMES = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "daily_tokens": "tokens per day",
    "daily_usd": "USD per day",
}


class CostEstimate(Protocol):
    def __call__(self, ctx: RequestContext, prompt_tokens: int, completion_tokens: int) -> int: ...


# --- in-process counters ---------------------------------------------------------------------


class _Entry:
    """One admission in a subject's minute log; `tokens` is corrected when it is charged."""

    __slots__ = ("at", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens


class _Subject:
    __slots__ = ("day", "held_nanos", "held_tokens", "log", "minute_tokens", "nanos", "tokens")

    def __init__(self) -> None:
        self.log: deque[_Entry] = deque()  # admissions of the last 60 s, oldest first
        self.minute_tokens = 0  # sum of the log's tokens
        self.day = -1
        self.tokens = self.held_tokens = self.nanos = self.held_nanos = 0

    def expire(self, now: float) -> None:
        log = self.log
        since = now - WINDOW_S
        while log and log[0].at <= since:
            self.minute_tokens -= log.popleft().tokens

    def roll(self, day: int) -> None:
        self.day = day
        self.tokens = self.held_tokens = self.nanos = self.held_nanos = 0


class InProcessCounters:
    """Counters in this process: exact for one replica, a few µs per admission."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._subjects: dict[str, _Subject] = {}
        self._lock = threading.Lock()  # the event loop is one thread; this is for embedders

    async def admit(
        self, id: str, checks: Sequence[Check], tokens: int, nanos: int
    ) -> Reservation | Refusal:
        return self.admit_now(id, checks, tokens, nanos)

    def admit_now(
        self, id: str, checks: Sequence[Check], tokens: int, nanos: int
    ) -> Reservation | Refusal:
        now = self.clock()
        day = int(now // DAY_S)
        subjects = self._subjects
        with self._lock:
            states = []
            for check in checks:
                state = subjects.get(check.subject)
                if state is None:
                    state = subjects[check.subject] = _Subject()
                if state.day != day:
                    state.roll(day)
                refusal = _refuse(check, state, now, tokens, nanos)
                if refusal is not None:
                    return refusal
                states.append(state)
            entries: list[_Entry | None] = []
            for check, state in zip(checks, states, strict=True):
                entry = None
                if check.per_minute:
                    entry = _Entry(now, tokens)
                    state.log.append(entry)
                    state.minute_tokens += tokens
                state.held_tokens += tokens
                state.held_nanos += nanos
                entries.append(entry)
        return Reservation(id, tuple(checks), tokens, nanos, day, now, entries)

    def settle(self, reservation: Reservation, tokens: int, nanos: int) -> None:
        now = self.clock()
        with self._lock:
            entries = reservation.entries or [None] * len(reservation.checks)
            for check, entry in zip(reservation.checks, entries, strict=True):
                state = self._subjects.get(check.subject)
                if state is None:
                    continue
                if entry is not None and entry.at > now - WINDOW_S:
                    state.minute_tokens += tokens - entry.tokens
                    entry.tokens = tokens
                if state.day == reservation.day:  # else that day's counters are gone already
                    state.held_tokens -= reservation.tokens
                    state.held_nanos -= reservation.nanos
                    state.tokens += tokens
                    state.nanos += nanos

    async def drain(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _refuse(check: Check, state: _Subject, now: float, tokens: int, nanos: int) -> Refusal | None:
    if check.per_minute:
        state.expire(now)
        log = state.log
        if check.rpm is not None and len(log) >= check.rpm:
            wait = log[0].at + WINDOW_S - now if log else WINDOW_S
            return Refusal(check, "rpm", wait)
        if check.tpm is not None and state.minute_tokens + tokens > check.tpm:
            return Refusal(
                check, "tpm", _tokens_free_in(log, state.minute_tokens, tokens, check.tpm, now)
            )
    if check.daily_tokens is not None and check.cap_tokens is not None:
        exhausted = _daily_refusal(
            state.tokens, state.held_tokens, tokens, check.daily_tokens, check.cap_tokens
        )
        if exhausted is not None:
            return Refusal(check, "daily_tokens", _until_tomorrow(now) if exhausted else 1.0)
    if check.daily_nanos is not None and check.cap_nanos is not None:
        exhausted = _daily_refusal(
            state.nanos, state.held_nanos, nanos, check.daily_nanos, check.cap_nanos
        )
        if exhausted is not None:
            return Refusal(check, "daily_usd", _until_tomorrow(now) if exhausted else 1.0)
    return None


def _until_tomorrow(now: float) -> float:
    return (now // DAY_S + 1) * DAY_S - now


def _tokens_free_in(log: deque[_Entry], total: int, tokens: int, tpm: int, now: float) -> float:
    """Seconds until enough of the window's tokens expire for `tokens` more to fit."""
    if tokens > tpm:
        return WINDOW_S
    for entry in log:
        total -= entry.tokens
        if total + tokens <= tpm:
            return entry.at + WINDOW_S - now
    return WINDOW_S


def _daily_refusal(used: int, held: int, want: int, quota: int, cap: int) -> bool | None:
    """None: admit. True: refused until tomorrow. False: refused while others are in flight."""
    if used + held < quota and used + held + want <= cap:
        return None
    return used >= quota or used + want > cap


# --- the stage: admit on the way in, charge when finished -----------------------------------------


class QuotaUnavailable(ThriftyError):
    """The shared counters cannot be reached and `limits.fail_open` is false."""

    status = 503
    type = "server_error"
    code = "limits_unavailable"


class Limiter(Stage):
    """The stage that admits a request on its way in and charges it when it is finished."""

    def __init__(
        self,
        settings: LimitsSettings,
        counters: Counters,
        estimate_nanos: CostEstimate | None = None,
    ) -> None:
        self.counters = counters
        self.estimate_nanos = estimate_nanos
        self.hard_cap = Fraction(str(settings.hard_cap)).as_integer_ratio()
        self.reserve_completion = settings.reserve_completion_tokens
        self.fail_open = settings.fail_open
        self.tenants = {name: TenantQuota.of(q) for name, q in settings.tenants.items()}
        default = settings.default_tenant
        self.default_tenant = None if default is None else TenantQuota.of(default)
        self._held: dict[str, Reservation] = {}
        # A key's checks, by the KeyPolicy object they were made from (a changed key is a new
        # object); and each tenant's, by name.
        self._key_checks: dict[int, tuple[KeyPolicy, Check | None]] = {}
        self._tenant_checks: dict[str, Check | None] = {}

    def checks(self, ctx: RequestContext) -> list[Check]:
        checks = []
        key = ctx.key
        if key is not None:
            cached = self._key_checks.get(id(key))
            if cached is None or cached[0] is not key:
                if len(self._key_checks) >= _SWEEP_AT:
                    self._key_checks.clear()
                check = Check.of("key:" + key.key_id, key, self.hard_cap) if limited(key) else None
                cached = self._key_checks[id(key)] = (key, check)
            if cached[1] is not None:
                checks.append(cached[1])
        tenant = ctx.tenant
        if tenant in self._tenant_checks:
            tenant_check = self._tenant_checks[tenant]
        else:
            quota = self.tenants.get(tenant, self.default_tenant)
            tenant_check = None
            if quota is not None and limited(quota):
                tenant_check = Check.of("tenant:" + tenant, quota, self.hard_cap)
            if len(self._tenant_checks) < _SWEEP_AT:
                self._tenant_checks[tenant] = tenant_check
        if tenant_check is not None:
            checks.append(tenant_check)
        return checks

    def demand(self, ctx: RequestContext) -> tuple[int, int]:
        """Tokens and nano-USD to reserve: the prompt's estimate plus the most it may generate."""
        body = ctx.body
        completion = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(completion, int):
            completion = self.reserve_completion
        prompt = int(prompt_tokens(ctx))
        nanos = self.estimate_nanos(ctx, prompt, completion) if self.estimate_nanos else 0
        return prompt + completion, nanos

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        checks = self.checks(ctx)
        if not checks:
            return None
        tokens, nanos = self.demand(ctx)
        try:
            result = await self.counters.admit(ctx.id, checks, tokens, nanos)
        except Exception as exc:  # the shared store is down
            if not self.fail_open:
                raise QuotaUnavailable("rate limits cannot be checked right now") from exc
            logger.warning("limits not checked for %s (admitted): %s", ctx.id, exc)
            return None
        if isinstance(result, Refusal):
            raise _rate_limited(result, tokens, nanos)
        if len(self._held) >= _SWEEP_AT:
            self._sweep()
        self._held[ctx.id] = result
        return None

    def _sweep(self) -> None:
        """Release reservations whose request never finished (an unexpected error upstream of
        the finish halves): they would hold quota until the day ends."""
        cutoff = time.time() - _STALE_S
        for rid, reservation in list(self._held.items()):
            if reservation.held_at < cutoff:
                del self._held[rid]
                self.counters.settle(reservation, 0, 0)

    def on_finish(self, ctx: RequestContext) -> None:
        """Charge what the request used (the meter has priced it by now)."""
        reservation = self._held.pop(ctx.id, None)
        if reservation is None:
            return
        usage = ctx.usage
        if usage is not None:
            tokens = _count(usage.get("prompt_tokens")) + _count(usage.get("completion_tokens"))
            nanos = ctx.cost_nanos or 0
        elif ctx.answered_by is not None:  # a model worked on it, but we never saw the usage
            tokens, nanos = reservation.tokens, reservation.nanos
        else:
            tokens = nanos = 0
        self.counters.settle(reservation, tokens, nanos)

    @property
    def in_flight(self) -> int:
        return len(self._held)

    async def close(self) -> None:
        await self.counters.drain()
        await self.counters.close()


def _count(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _rate_limited(refusal: Refusal, tokens: int, nanos: int) -> RateLimited:
    check = refusal.check
    kind, _, name = check.subject.partition(":")
    who = f"{'key' if kind == 'key' else 'tenant'} {name}"
    limit = {
        "rpm": check.rpm,
        "tpm": check.tpm,
        "daily_tokens": check.daily_tokens,
        "daily_usd": check.daily_nanos,
    }[refusal.limit]
    shown = format_nanos(limit or 0) if refusal.limit == "daily_usd" else str(limit)
    wait = max(1, math.ceil(refusal.retry_after_s))
    what = LIMIT_NAMES[refusal.limit]
    too_big = (refusal.limit == "tpm" and tokens > (check.tpm or 0)) or (
        refusal.limit == "daily_tokens" and tokens > (check.cap_tokens or 0)
    )
    if too_big:
        message = (
            f"Request too large for {who} on {what}: limit {shown}, requested up to {tokens} "
            "tokens (prompt + max_tokens). Lower max_tokens or shorten the prompt."
        )
    else:
        message = (
            f"Rate limit reached for {who} on {what}: limit {shown}. Please try again in {wait}s."
        )
    headers = {"retry-after": str(wait), "x-thrifty-limit": f"{check.subject}:{refusal.limit}"}
    return RateLimited(message, headers=headers)


# --- money estimate --------------------------------------------------------------------------


class PriceEstimate:
    """A request's most expensive cloud price: every prompt token a cache miss, full completion."""

    def __init__(self, prices: PriceBook, cny_per_usd: float) -> None:
        self.prices = prices
        self.cny_per_usd = Decimal(str(cny_per_usd))

    def __call__(self, ctx: RequestContext, prompt_tokens: int, completion_tokens: int) -> int:
        usage = TokenUsage(prompt_tokens, completion_tokens)
        at = datetime.fromtimestamp(ctx.received_at, UTC)
        worst = 0
        for target in ctx.targets:
            if target.upstream is None:
                continue
            nanos = self.prices.cost_nanos(target.model, usage, at)
            if nanos is None:
                continue
            currency = self.prices.currency(target.model)
            if currency != "USD":
                nanos = convert_nanos(nanos, currency, "USD", cny_per_usd=self.cny_per_usd)
            worst = max(worst, nanos)
        return worst


def build_limiter(settings: LimitsSettings, estimate: CostEstimate | None = None) -> Limiter:
    """The limiter the config asks for: Redis counters when `redis_url` is set."""
    counters: Counters
    if settings.redis_url:
        from thrifty.gateway.limits_redis import RedisCounters

        counters = RedisCounters.from_url(settings.redis_url, prefix=settings.redis_prefix)
    else:
        counters = InProcessCounters()
    return Limiter(settings, counters, estimate)
