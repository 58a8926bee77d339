"""The protocol both cache backends implement, and what they report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from thrifty.errors import MissingExtra as MissingExtra

# Called with (key, reason) for each entry a backend drops before its time: "lru" or "expired".
OnEvict = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class StoreStats:
    entries: int
    bytes: int


class Backend(Protocol):
    """Answers by key, each with a TTL, bounded in entries and bytes with LRU eviction."""

    shared: bool  # other gateway processes see the same entries (calls then do network I/O)

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def clear(self, tenant: str | None = None) -> int:
        """Drop every entry (or one tenant's); the number dropped."""
        ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...
