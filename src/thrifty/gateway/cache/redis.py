"""The shared backend: answers in Redis, seen by every gateway replica.

Keys, under `cache.redis_prefix` (`<p>`):

- `<p>e:<tenant>:<digest>`: an answer (orjson bytes), with its TTL as Redis's own expiry;
- `<p>lru`: sorted set of entry keys by last use (µs): the LRU order every replica shares;
- `<p>size`, `<p>bytes`: each entry's size and their total, for the byte bound and the gauges;
- `<p>ev`: a stream of checks of semantic hits (entry, similarity, right or wrong), trimmed to
  about 10,000: every replica's learned thresholds read them (`evidence.py`);
- `<p>vec`: a stream of semantic records (entry key, partition, expiry, vector, signature, the
  masked question),
  trimmed to about `max_entries`. Each replica keeps its own vector index and reads only the
  records added since it last looked (Debian's Redis has no vector search: RediSearch is a
  module, and Debian's `redis-redisearch` is 1.2, years older than its vector index).

A write is one Lua script (Redis runs it alone): store the entry, update the LRU order, forget
entries that certainly expired (unused for a whole TTL), then evict least recently used entries
until both bounds hold. It returns what it evicted so this replica can drop those vectors at
once; other replicas drop theirs when a hit finds the entry gone.

Calls are synchronous (redis-py's blocking client): the cache stage runs them on its own small
thread pool, which works from any event loop and from finish halves that are not coroutines. The
scripts build keys from the prefix, so this needs one Redis (or a primary), not Redis Cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from thrifty.gateway.cache.base import MissingExtra, OnEvict, StoreStats

_TIMEOUT_S = 0.5  # a cache that waits longer than this is slower than no cache

# KEYS: entry, lru, size, bytes. ARGV: value, ttl ms, now µs, max entries, max bytes,
# stale-before µs (LRU scores are µs: two uses within one millisecond still have an order).
# Returns {entries, bytes, reason1, key1, reason2, key2, ...}.
_PUT = """
local size = string.len(ARGV[1])
local old = tonumber(redis.call('HGET', KEYS[3], KEYS[1]) or 0)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], size)
local total = redis.call('INCRBY', KEYS[4], size - old)
local out = {0, 0}
local function drop(key, why)
  local s = tonumber(redis.call('HGET', KEYS[3], key) or 0)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[2], key)
  redis.call('HDEL', KEYS[3], key)
  total = redis.call('DECRBY', KEYS[4], s)
  table.insert(out, why)
  table.insert(out, key)
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[6], 'LIMIT', 0, 100)) do
  drop(key, 'expired')
end
local count = redis.call('ZCARD', KEYS[2])
while count > tonumber(ARGV[4]) or total > tonumber(ARGV[5]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if oldest == nil or oldest == KEYS[1] then break end
  drop(oldest, 'lru')
  count = count - 1
end
out[1] = count
out[2] = total
return out
"""

# KEYS: lru, size, bytes, then the entries to delete. Returns how many existed.
_DELETE = """
local n = 0
for i = 4, #KEYS do
  local s = tonumber(redis.call('HGET', KEYS[2], KEYS[i]) or 0)
  n = n + redis.call('DEL', KEYS[i])
  redis.call('ZREM', KEYS[1], KEYS[i])
  redis.call('HDEL', KEYS[2], KEYS[i])
  redis.call('DECRBY', KEYS[3], s)
end
return n
"""


@dataclass(frozen=True, slots=True)
class Check:
    """A check of a semantic hit, as shared between replicas."""

    origin: str  # the replica that made it
    key: str
    similarity: float
    correct: bool
    source: str


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """A cached question as the semantic index needs it; the vector is raw float32 bytes."""

    key: str
    partition: str
    expires_at: float  # unix seconds
    vector: bytes
    signature: bytes  # orjson of guard.Signature.to_list()
    question: str = ""  # masked, for the audit


class RedisStore:
    shared = True

    def __init__(
        self,
        url: str,
        prefix: str,
        max_entries: int,
        max_bytes: int,
        max_ttl_s: float,
        *,
        on_evict: OnEvict | None = None,
    ) -> None:
        try:
            import redis
        except ImportError:
            raise MissingExtra(
                "a Redis cache needs the redis extra: pip install 'thrifty[redis]'"
            ) from None
        self.client: Any = redis.Redis.from_url(
            url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
        )
        self.prefix = prefix
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_ttl_ms = int(max_ttl_s * 1000)
        self.on_evict = on_evict
        self._lru, self._size, self._bytes = prefix + "lru", prefix + "size", prefix + "bytes"
        self._vec = prefix + "vec"
        self._ev = prefix + "ev"
        self._put = self.client.register_script(_PUT)
        self._delete = self.client.register_script(_DELETE)
        self.last_stats = StoreStats(0, 0)  # as of this replica's last write: the gauges' source

    def _entry(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def get(self, key: str) -> bytes | None:
        pipe = self.client.pipeline(transaction=False)
        full = self._entry(key)
        pipe.get(full)
        pipe.zadd(self._lru, {full: _now_us()}, xx=True)  # a use: later in the LRU order
        value, _ = pipe.execute()
        return value if isinstance(value, bytes) else None

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        now = _now_us()
        ttl_ms = max(1, int(ttl_s * 1000))
        stale = now - self.max_ttl_ms * 1000
        keys = [self._entry(key), self._lru, self._size, self._bytes]
        args: list[bytes | int] = [value, ttl_ms, now, self.max_entries, self.max_bytes, stale]
        out = self._put(keys=keys, args=args)
        self.last_stats = StoreStats(int(out[0]), int(out[1]))
        if self.on_evict is not None:
            cut = len(self.prefix) + 2  # "<p>e:"
            for i in range(2, len(out), 2):
                self.on_evict(out[i + 1].decode()[cut:], out[i].decode())

    def delete(self, key: str) -> None:
        self._delete(keys=[self._lru, self._size, self._bytes, self._entry(key)])

    def clear(self, tenant: str | None = None) -> int:
        """Drop every entry and vector, or one tenant's entries (by its tag)."""
        if tenant is None:
            dropped = int(self.client.zcard(self._lru))
            doomed = list(self.client.scan_iter(match=_glob(self.prefix) + "*", count=1000))
            for i in range(0, len(doomed), 500):
                self.client.unlink(*doomed[i : i + 500])
            self.last_stats = StoreStats(0, 0)
            return dropped
        dropped = 0
        pattern = _glob(f"{self.prefix}e:{tenant}:") + "*"
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 500:
                dropped += int(self._delete(keys=[self._lru, self._size, self._bytes, *batch]))
                batch = []
        if batch:
            dropped += int(self._delete(keys=[self._lru, self._size, self._bytes, *batch]))
        return dropped  # their vectors stay in the stream: a hit on one finds no entry

    def stats(self) -> StoreStats:
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self._lru)
        pipe.get(self._bytes)
        entries, size = pipe.execute()
        self.last_stats = StoreStats(int(entries), int(size or 0))
        return self.last_stats

    def vector_count(self) -> int:
        return int(self.client.xlen(self._vec))

    def add_vector(self, record: VectorRecord) -> None:
        fields = {
            "k": record.key,
            "p": record.partition,
            "x": int(record.expires_at * 1000),
            "v": record.vector,
            "g": record.signature,
            "t": record.question,
        }
        self.client.xadd(self._vec, fields, maxlen=self.max_entries, approximate=True)

    def read_vectors(self, after: str) -> tuple[list[VectorRecord], str]:
        """Records added after stream id `after` ("0": all), and the id to read from next."""
        records: list[VectorRecord] = []
        now = time.time()
        while True:
            start = "-" if after == "0" else f"({after}"
            batch = self.client.xrange(self._vec, min=start, count=1000)
            for entry_id, fields in batch:
                after = entry_id.decode()
                expires_at = int(fields[b"x"]) / 1000
                if expires_at > now:
                    records.append(
                        VectorRecord(
                            fields[b"k"].decode(),
                            fields[b"p"].decode(),
                            expires_at,
                            fields[b"v"],
                            fields[b"g"],
                            fields.get(b"t", b"").decode(),
                        )
                    )
            if len(batch) < 1000:
                return records, after

    def add_check(
        self, origin: str, key: str, similarity: float, correct: bool, source: str
    ) -> None:
        fields = {"o": origin, "k": key, "s": repr(similarity), "c": int(correct), "w": source}
        self.client.xadd(self._ev, fields, maxlen=10_000, approximate=True)

    def read_checks(self, after: str) -> tuple[list[Check], str]:
        """Checks added after stream id `after` ("0": all), and the id to read from next."""
        checks: list[Check] = []
        while True:
            start = "-" if after == "0" else f"({after}"
            batch = self.client.xrange(self._ev, min=start, count=1000)
            for entry_id, f in batch:
                after = entry_id.decode()
                checks.append(
                    Check(
                        f[b"o"].decode(),
                        f[b"k"].decode(),
                        float(f[b"s"]),
                        f[b"c"] == b"1",
                        f[b"w"].decode(),
                    )
                )
            if len(batch) < 1000:
                return checks, after

    def info(self) -> dict[str, Any]:
        """The server's version and memory, for `thrifty cache stats`."""
        server = self.client.info("server")
        memory = self.client.info("memory")
        return {
            "redis_version": server.get("redis_version"),
            "used_memory_human": memory.get("used_memory_human"),
            "maxmemory_policy": memory.get("maxmemory_policy"),
        }

    def close(self) -> None:
        self.client.close()


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _glob(text: str) -> str:
    """`text` with Redis glob metacharacters escaped, for SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
