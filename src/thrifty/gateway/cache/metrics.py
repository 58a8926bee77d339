"""The cache's Prometheus metrics, on the app's registry (names: `thrifty_cache_*`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_EMBED_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1)


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.hits = Counter(
            "thrifty_cache_hits", "Requests answered from the cache", ["kind"], registry=r
        )
        self.misses = Counter(
            "thrifty_cache_misses", "Cache lookups that found no answer", ["kind"], registry=r
        )
        self.skipped = Counter(
            "thrifty_cache_skipped",
            "Requests the cache did not look up (nondeterministic, no-cache, pii, masked, error)",
            ["reason"],
            registry=r,
        )
        self.writes = Counter("thrifty_cache_writes", "Answers written", ["kind"], registry=r)
        self.evictions = Counter(
            "thrifty_cache_evictions", "Entries dropped before use", ["reason"], registry=r
        )
        self.errors = Counter(
            "thrifty_cache_errors",
            "Cache backend failures (the request went on without the cache)",
            ["op"],
            registry=r,
        )
        self.entries = Gauge("thrifty_cache_entries", "Answers in the cache", registry=r)
        self.bytes = Gauge("thrifty_cache_bytes", "Bytes of answers in the cache", registry=r)
        self.vectors = Gauge(
            "thrifty_cache_semantic_vectors",
            "Questions in this replica's semantic index",
            registry=r,
        )
        self.declined = Counter(
            "thrifty_cache_semantic_declined",
            "Semantic near-hits (similarity at or above the base threshold) not served, by reason: "
            "number, code, name, time, place, polarity, negation, script, swap, added (the content "
            "guard), unvouched (the similarity's estimated error rate is above the target), entry "
            "(below the entry's own learned threshold)",
            ["reason"],
            registry=r,
        )
        self.checks = Counter(
            "thrifty_cache_semantic_checks",
            "Semantic hits checked, by source (feedback, invalidate, shadow) and outcome "
            "(right, wrong)",
            ["source", "outcome"],
            registry=r,
        )
        self.error_rate = Gauge(
            "thrifty_cache_semantic_error_rate",
            "Wrong semantic hits over checked ones (NaN before any check)",
            registry=r,
        )
        self.threshold = Gauge(
            "thrifty_cache_semantic_threshold",
            "Lowest similarity above which every band is vouched for (learned; above 1: none)",
            registry=r,
        )
        self.embed_seconds = Histogram(
            "thrifty_cache_embed_seconds",
            "Time to embed one question",
            buckets=_EMBED_BUCKETS,
            registry=r,
        )
