"""Emptying the in-process cache of every gateway process on this machine, while they serve.

`thrifty serve --workers N` runs N processes, each with its own in-process cache; an admin
request reaches only one of them. So a clear is written as one line to an append-only file in
`$THRIFTY_HOME` that every process sharing that home watches: before each cache lookup a process
compares the file's size with what it has read (one `stat`, about a microsecond) and applies the
new lines. A clear therefore holds for every worker from its very next lookup, with no polling
interval, and a worker started later ignores clears older than itself (its cache began empty).

A shared Redis cache needs none of this: it is cleared once, in Redis.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thrifty.gateway.cache.base import Backend, StoreStats

logger = logging.getLogger(__name__)

CLEARS_FILE = "cache-clears.jsonl"


class ClearLog:
    """The clears asked of every process sharing one home, as JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = self._size()
        self._lock = threading.Lock()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, tenant: str | None) -> None:
        """Ask every process to drop every entry, or one tenant's (its key tag)."""
        line = json.dumps({"ts": time.time(), "tenant": tenant}).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from two processes never mix
        finally:
            os.close(fd)

    def take(self) -> list[str | None]:
        """The clears written since the last call (tenant tag, or None for everything)."""
        size = self._size()
        if size == self._seen:
            return []
        with self._lock:
            if size < self._seen:  # the file was removed or truncated: start over
                self._seen = 0
            with open(self.path, "rb") as f:
                f.seek(self._seen)
                data = f.read(size - self._seen)
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
            self._seen += len(complete)
        clears: list[str | None] = []
        for raw in complete.splitlines():
            try:
                tenant: Any = json.loads(raw).get("tenant")
            except (ValueError, AttributeError):
                logger.warning("ignoring a malformed line in %s", self.path)
                continue
            clears.append(tenant if isinstance(tenant, str) else None)
        return clears


class ClearingStore:
    """An in-process backend that applies the clears of its `ClearLog` before each lookup."""

    shared = False

    def __init__(
        self, inner: Backend, log: ClearLog, on_clear: Callable[[str | None], None] | None = None
    ) -> None:
        self.inner = inner
        self.log = log
        self.on_clear = on_clear

    def sync(self) -> int:
        """Apply the clears other processes (or this one) wrote; the entries dropped here."""
        dropped = 0
        for tenant in self.log.take():
            dropped += self.inner.clear(tenant)
            if self.on_clear is not None:
                self.on_clear(tenant)
        return dropped

    def get(self, key: str) -> bytes | None:
        self.sync()
        return self.inner.get(key)

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self.inner.put(key, value, ttl_s)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def clear(self, tenant: str | None = None) -> int:
        """Clear every process sharing the log: this one now, the others at their next lookup."""
        self.log.append(tenant)
        return self.sync()

    def stats(self) -> StoreStats:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()
