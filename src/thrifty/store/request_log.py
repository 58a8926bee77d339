"""The request log: one row per request, written off the hot path by a batching thread.

`append` costs a tuple and a queue put; `BatchWriter` writes the rows into SQLite (WAL) in
batches. `close` writes what is left: the app's lifespan calls it on shutdown, SIGTERM included.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from thrifty.gateway.context import RequestContext
from thrifty.store.batching import SQLiteWriter

logger = logging.getLogger(__name__)

COLUMNS = (
    "id", "ts", "tenant", "key_id", "endpoint", "model", "route", "reason", "upstream_model",
    "stream", "prompt_tokens", "completion_tokens", "cached_tokens", "latency_ms", "ttft_ms",
    "cost_nanos", "baseline_nanos", "status", "error_code", "pii", "cache", "variant",
)  # fmt: skip
_INSERT = (
    f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)


def row_of(ctx: RequestContext) -> tuple[Any, ...]:
    usage = ctx.usage or {}
    ttft = ctx.ttft_s
    return (
        ctx.id,
        ctx.received_at,
        ctx.tenant,
        ctx.key_id,
        ctx.endpoint,
        ctx.model,
        ctx.route,
        ctx.reason,
        ctx.answered_by.model if ctx.answered_by else None,
        int(ctx.stream),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        _cached_tokens(usage),
        ctx.latency_s * 1000.0,
        None if ttft is None else ttft * 1000.0,
        ctx.cost_nanos,
        ctx.baseline_nanos,
        ctx.status,
        ctx.error_code,
        ",".join(sorted(ctx.pii)),
        ctx.cache,
        ctx.variant,
    )


def _cached_tokens(usage: dict[str, Any]) -> int:
    hit = usage.get("prompt_cache_hit_tokens")
    if hit is None:
        details = usage.get("prompt_tokens_details")
        hit = details.get("cached_tokens") if isinstance(details, dict) else 0
    return int(hit or 0)


class RequestLog(SQLiteWriter[tuple[Any, ...]]):
    name = "request-log"

    def append(self, ctx: RequestContext) -> None:
        """Finisher: the request's row, queued for the writer thread."""
        self.add(row_of(ctx))

    def write(self, conn: sqlite3.Connection, batch: Sequence[tuple[Any, ...]]) -> None:
        with conn:
            conn.executemany(_INSERT, batch)
