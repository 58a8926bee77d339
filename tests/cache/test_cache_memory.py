"""The in-process backend: TTL, LRU by entries and by bytes, tenant clear."""

from __future__ import annotations

from thrifty.gateway.cache.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_get_put_and_ttl() -> None:
    clock = Clock()
    evicted: list[tuple[str, str]] = []
    store = MemoryStore(10, 10_000, clock=clock, on_evict=lambda k, r: evicted.append((k, r)))
    store.put("a:1", b"one", ttl_s=60)
    assert store.get("a:1") == b"one"
    clock.now += 59.9
    assert store.get("a:1") == b"one"
    clock.now += 0.2
    assert store.get("a:1") is None
    assert evicted == [("a:1", "expired")]
    assert store.stats().entries == 0 and store.stats().bytes == 0


def test_lru_by_entries_keeps_the_recently_used() -> None:
    evicted: list[tuple[str, str]] = []
    store = MemoryStore(2, 10_000, on_evict=lambda k, r: evicted.append((k, r)))
    store.put("a:1", b"1", 60)
    store.put("a:2", b"2", 60)
    assert store.get("a:1") == b"1"  # now a:2 is the least recently used
    store.put("a:3", b"3", 60)
    assert store.get("a:2") is None
    assert store.get("a:1") == b"1" and store.get("a:3") == b"3"
    assert evicted == [("a:2", "lru")]


def test_lru_by_bytes() -> None:
    store = MemoryStore(100, 25)
    for i in range(5):
        store.put(f"a:{i}", b"x" * 10, 60)
    stats = store.stats()
    assert stats.entries == 2 and stats.bytes == 20
    assert store.get("a:4") is not None and store.get("a:0") is None


def test_overwrite_keeps_byte_count_exact() -> None:
    store = MemoryStore(10, 1000)
    store.put("a:1", b"x" * 100, 60)
    store.put("a:1", b"y" * 10, 60)
    assert store.stats().bytes == 10 and store.get("a:1") == b"y" * 10
    store.delete("a:1")
    assert store.stats().bytes == 0


def test_one_oversized_entry_is_kept_alone() -> None:
    store = MemoryStore(10, 50)
    store.put("a:1", b"x" * 10, 60)
    store.put("a:2", b"x" * 80, 60)
    assert store.get("a:1") is None and store.get("a:2") is not None


def test_clear_one_tenant_or_all() -> None:
    store = MemoryStore(10, 1000)
    store.put("acme:1", b"1", 60)
    store.put("acme:2", b"2", 60)
    store.put("globex:1", b"3", 60)
    assert store.clear("acme") == 2
    assert store.get("globex:1") == b"3"
    assert store.clear() == 1
    assert store.stats().entries == 0
