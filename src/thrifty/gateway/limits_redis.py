"""Rate-limit and budget counters in Redis, shared by every gateway replica.

Exact across replicas: an admission is one Lua script that expires the minute logs, checks every
subject's limits and, only when all pass, records the request; a charge is another. Redis runs a
script alone, so no two replicas can both take the last unit of a quota. The clock is Redis's own
(`TIME`), so replicas with skewed clocks still agree on windows and days.

Keys, per subject (`key:<id>` or `tenant:<name>`), under `limits.redis_prefix`:

- `<p>:<subject>:m`: sorted set of the last 60 s of admissions (member: request id, score: ms);
- `<p>:<subject>:mt`: hash request id → tokens, plus `_sum`, their total;
- `<p>:<subject>:d:<unix day>`: hash `tok`/`tokr` (tokens used/reserved), `usd`/`usdr` (nano-USD
  used/reserved); kept two days.

Money travels as decimal strings and is added with HINCRBY (64-bit integers); comparisons in Lua
are doubles, exact below 2**53 nano-USD (9 million USD a day). The scripts build the day's key
from Redis's clock, so this needs one Redis (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from thrifty.gateway.quota import Check, Refusal, Reservation

logger = logging.getLogger(__name__)

# ARGV: now (ms; -1: Redis's clock), id, tokens, nano-USD, then per subject: rpm, tpm, daily
# tokens, their cap, daily nano-USD, their cap (-1: none). Returns {0, day, now} when admitted,
# else {subject number, limit, ms to wait}.
_ADMIT = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local id, tokens, nanos = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local day = math.floor(now / 86400000)
local since = now - 60000
local n = #KEYS / 3

local function expire(log, tok)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', since)
  if #old == 0 then return end
  local gone = 0
  for _, member in ipairs(old) do
    gone = gone + (tonumber(redis.call('HGET', tok, member)) or 0)
    redis.call('HDEL', tok, member)
  end
  redis.call('HINCRBY', tok, '_sum', -gone)
  redis.call('ZREMRANGEBYSCORE', log, '-inf', since)
end

local function daily_wait(used, held, want, quota, cap)
  if used + held < quota and used + held + want <= cap then return nil end
  if used >= quota or used + want > cap then return (day + 1) * 86400000 - now end
  return 1000
end

for i = 0, n - 1 do
  local log, tok, daily = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3] .. ':' .. day
  local a = 4 + 6 * i
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local dt, ct = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local dn, cn = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  if rpm >= 0 or tpm >= 0 then
    expire(log, tok)
    if rpm >= 0 and redis.call('ZCARD', log) >= rpm then
      local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
      local wait = 60000
      if #first > 0 then wait = tonumber(first[2]) + 60000 - now end
      return {i + 1, 'rpm', wait}
    end
    if tpm >= 0 then
      local sum = tonumber(redis.call('HGET', tok, '_sum')) or 0
      if sum + tokens > tpm then
        local wait = 60000
        if tokens <= tpm then
          local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
          for j = 1, #entries, 2 do
            sum = sum - (tonumber(redis.call('HGET', tok, entries[j])) or 0)
            if sum + tokens <= tpm then
              wait = tonumber(entries[j + 1]) + 60000 - now
              break
            end
          end
        end
        return {i + 1, 'tpm', wait}
      end
    end
  end
  if dt >= 0 or dn >= 0 then
    local d = redis.call('HMGET', daily, 'tok', 'tokr', 'usd', 'usdr')
    local used_t, held_t = tonumber(d[1]) or 0, tonumber(d[2]) or 0
    local used_n, held_n = tonumber(d[3]) or 0, tonumber(d[4]) or 0
    if dt >= 0 then
      local wait = daily_wait(used_t, held_t, tokens, dt, ct)
      if wait then return {i + 1, 'daily_tokens', wait} end
    end
    if dn >= 0 then
      local wait = daily_wait(used_n, held_n, nanos, dn, cn)
      if wait then return {i + 1, 'daily_usd', wait} end
    end
  end
end

for i = 0, n - 1 do
  local log, tok, daily = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3] .. ':' .. day
  local a = 4 + 6 * i
  if tonumber(ARGV[a + 1]) >= 0 or tonumber(ARGV[a + 2]) >= 0 then
    redis.call('ZADD', log, now, id)
    redis.call('HSET', tok, id, ARGV[3])
    redis.call('HINCRBY', tok, '_sum', ARGV[3])
    redis.call('PEXPIRE', log, 61000)
    redis.call('PEXPIRE', tok, 61000)
  end
  redis.call('HINCRBY', daily, 'tokr', ARGV[3])
  redis.call('HINCRBY', daily, 'usdr', ARGV[4])
  redis.call('EXPIRE', daily, 172800)
end
return {0, day, now}
"""

# ARGV: id, day, tokens used, -tokens reserved, nano-USD used, -nano-USD reserved, then one
# flag per subject: 1 when it has a minute log.
_SETTLE = """
local id, day = ARGV[1], ARGV[2]
for i = 0, #KEYS / 3 - 1 do
  local tok, daily = KEYS[3 * i + 2], KEYS[3 * i + 3] .. ':' .. day
  if ARGV[7 + i] == '1' then
    local held = redis.call('HGET', tok, id)
    if held then
      redis.call('HSET', tok, id, ARGV[3])
      redis.call('HINCRBY', tok, '_sum', tonumber(ARGV[3]) - tonumber(held))
    end
  end
  if redis.call('EXISTS', daily) == 1 then
    redis.call('HINCRBY', daily, 'tokr', ARGV[4])
    redis.call('HINCRBY', daily, 'tok', ARGV[3])
    redis.call('HINCRBY', daily, 'usdr', ARGV[6])
    redis.call('HINCRBY', daily, 'usd', ARGV[5])
  end
end
return 0
"""


def _arg(value: int | None) -> int:
    return -1 if value is None else value


class RedisCounters:
    """Counters in Redis. `clock` (ms) is for tests; by default the scripts read Redis's clock."""

    def __init__(
        self, client: Any, prefix: str = "thrifty:limits", clock: Callable[[], int] | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "thrifty:limits", max_connections: int = 64
    ) -> RedisCounters:
        """A client whose pool makes requests wait for a free connection rather than fail
        (redis-py's default pool raises past 100 requests in flight)."""
        try:
            import redis.asyncio
        except ImportError:
            raise RuntimeError(
                "limits.redis_url needs the redis package: pip install 'thrifty[redis]'"
            ) from None
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10
        )
        return cls(redis.asyncio.Redis(connection_pool=pool), prefix)

    def _keys(self, checks: Sequence[Check]) -> list[str]:
        keys = []
        for check in checks:
            base = f"{self.prefix}:{check.subject}"
            keys += [base + ":m", base + ":mt", base + ":d"]
        return keys

    async def admit(
        self, id: str, checks: Sequence[Check], tokens: int, nanos: int
    ) -> Reservation | Refusal:
        now = -1 if self.clock is None else self.clock()
        args: list[Any] = [now, id, tokens, nanos]
        for c in checks:
            args += [
                _arg(c.rpm),
                _arg(c.tpm),
                _arg(c.daily_tokens),
                _arg(c.cap_tokens),
                _arg(c.daily_nanos),
                _arg(c.cap_nanos),
            ]
        result = await self._admit(keys=self._keys(checks), args=args)
        if int(result[0]) == 0:
            return Reservation(id, tuple(checks), tokens, nanos, int(result[1]), time.time())
        limit = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        return Refusal(checks[int(result[0]) - 1], limit, int(result[2]) / 1000)

    def settle(self, reservation: Reservation, tokens: int, nanos: int) -> None:
        task = asyncio.get_running_loop().create_task(self.settle_now(reservation, tokens, nanos))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle_now(self, reservation: Reservation, tokens: int, nanos: int) -> None:
        checks = reservation.checks
        args: list[Any] = [
            reservation.id,
            reservation.day,
            tokens,
            -reservation.tokens,
            nanos,
            -reservation.nanos,
            *(1 if c.per_minute else 0 for c in checks),
        ]
        try:
            await self._settle(keys=self._keys(checks), args=args)
        except Exception as exc:
            logger.warning("could not charge %s to the limits: %s", reservation.id, exc)

    async def drain(self) -> None:
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)
