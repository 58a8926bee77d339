"""The in-process backend: an LRU dict with per-entry expiry, bounded in entries and bytes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from thrifty.gateway.cache.base import OnEvict, StoreStats


class MemoryStore:
    """Thread-safe: the event loop reads and writes, and the embedding thread writes too."""

    shared = False

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        *,
        on_evict: OnEvict | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.on_evict = on_evict
        self.clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # LRU first
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            value, expires_at = item
            if expires_at > self.clock():
                self._entries.move_to_end(key)
                return value
            self._drop(key)
        if self.on_evict is not None:
            self.on_evict(key, "expired")
        return None

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        evicted: list[str] = []
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (value, self.clock() + ttl_s)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                if oldest == key:
                    break  # one entry larger than the bound: keep it alone rather than nothing
                self._drop(oldest)
                evicted.append(oldest)
        if self.on_evict is not None:
            for old in evicted:
                self.on_evict(old, "lru")

    def delete(self, key: str) -> None:
        with self._lock:
            if key in self._entries:
                self._drop(key)

    def clear(self, tenant: str | None = None) -> int:
        """Drop every entry, or those of one tenant (its tag, as in the keys)."""
        with self._lock:
            if tenant is None:
                dropped = len(self._entries)
                self._entries.clear()
                self._bytes = 0
                return dropped
            prefix = tenant + ":"
            doomed = [k for k in self._entries if k.startswith(prefix)]
            for key in doomed:
                self._drop(key)
            return len(doomed)

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(len(self._entries), self._bytes)

    def close(self) -> None:
        return None

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self._bytes -= len(value)
