"""Prometheus metrics. One registry per app (tests build several apps in one process).

The names here are a contract: `deploy/prometheus/rules.yaml` and the Grafana dashboard read them.

Under `serve --workers N` (PROMETHEUS_MULTIPROC_DIR set) every process writes its values into
files in that directory and `/metrics`, whichever worker answers it, sums them all; gauges say
how (`livesum`: the sum over live workers; `max`: the worst breaker state any worker sees).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from thrifty.context import RequestContext

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.shared_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.requests = Counter(
            "thrifty_requests", "Requests answered", ["route", "model", "status"], registry=r
        )
        self.latency = Histogram(
            "thrifty_request_duration_seconds",
            "Time from request to last byte",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "thrifty_ttft_seconds",
            "Time to first streamed token",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "thrifty_tokens", "Tokens processed", ["route", "direction"], registry=r
        )
        self.cost = Counter("thrifty_cost_usd", "Money spent, USD", ["route", "model"], registry=r)
        self.baseline = Counter(
            "thrifty_baseline_cost_usd",
            "What the same requests would have cost on the baseline cloud model, USD",
            ["route", "model"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "thrifty_local_queue_depth",
            "Requests waiting for a local engine slot",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "thrifty_local_in_flight",
            "Requests in the local engine, running or queued",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.breaker = Gauge(
            "thrifty_upstream_breaker_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
            ["upstream"],
            registry=r,
            multiprocess_mode="max",
        )
        self.store_dropped = Counter(
            "thrifty_store_dropped_rows",
            "Rows a store writer lost: beyond its buffer while the database was away, or refused",
            ["writer"],
            registry=r,
        )
        self.store_buffered = Gauge(
            "thrifty_store_buffered_rows",
            "Rows a store writer accepted and has not written yet",
            ["writer"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cold_start = Histogram(
            "thrifty_local_cold_start_seconds",
            "How long requests waited for their local model to load",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "thrifty_upstream_retries", "Retried upstream attempts", ["upstream"], registry=r
        )
        self._collect_hooks: list[Callable[[], None]] = []
        self._series: dict[tuple[str, str], _Series] = {}
        self._status: dict[tuple[str, str, int], Any] = {}

    def on_collect(self, hook: Callable[[], None]) -> None:
        """Run `hook` before each scrape (gauges read from live objects)."""
        self._collect_hooks.append(hook)

    def refresh(self) -> None:
        for hook in self._collect_hooks:
            hook()

    def render(self) -> bytes:
        self.refresh()
        if self.shared_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, self.shared_dir)
        return generate_latest(merged)

    def observe(self, ctx: RequestContext) -> None:
        route = ctx.route or "none"
        # a name no target answers to is the client's free text: one label for all of them
        model = ctx.model if ctx.targets else "unresolved"
        series = self._series.get((route, model))
        if series is None:  # labels() costs a lock and a dict lookup per call: once per pair
            series = self._series[(route, model)] = _Series(self, route, model)
        status = self._status.get((route, model, ctx.status))
        if status is None:
            status = self.requests.labels(route, model, str(ctx.status))
            self._status[(route, model, ctx.status)] = status
        status.inc()
        series.latency.observe(ctx.latency_s)
        ttft = ctx.ttft_s
        if ttft is not None:
            series.ttft.observe(ttft)
        cold_ms = ctx.response_headers.get("x-thrifty-cold-start-ms")
        if cold_ms is not None and ctx.answered_by is not None:
            self.cold_start.labels(ctx.answered_by.model).observe(float(cold_ms) / 1000)
        usage = ctx.usage
        if usage:
            series.tokens_in.inc(usage.get("prompt_tokens") or 0)
            series.tokens_out.inc(usage.get("completion_tokens") or 0)
        if ctx.cost_nanos is not None:
            series.cost.inc(ctx.cost_nanos / 1e9)
        if ctx.baseline_nanos is not None:
            # saving = baseline - cost, in PromQL; a counter of it could not go negative
            series.baseline.inc(ctx.baseline_nanos / 1e9)


class _Series:
    """The labelled children one (route, model) pair updates on every request."""

    __slots__ = ("baseline", "cost", "latency", "tokens_in", "tokens_out", "ttft")

    def __init__(self, metrics: Metrics, route: str, model: str) -> None:
        self.latency = metrics.latency.labels(route)
        self.ttft = metrics.ttft.labels(route)
        self.tokens_in = metrics.tokens.labels(route, "in")
        self.tokens_out = metrics.tokens.labels(route, "out")
        self.cost = metrics.cost.labels(route, model)
        self.baseline = metrics.baseline.labels(route, model)
