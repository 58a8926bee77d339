"""The request log: one row per request, written off the hot path by a batching thread.

`append` costs a tuple and a queue put; `BatchWriter` writes the rows into SQLite (WAL) in
batches. `close` writes what is left: the app's lifespan calls it on shutdown, SIGTERM included.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thrifty.gateway.context import RequestContext
from thrifty.store.batching import BatchWriter
from thrifty.store.migrations import migrate

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


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"unsupported database URL {url!r} (expected sqlite:///path)")
    return Path(url.removeprefix("sqlite:///")).expanduser()


def connect(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


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


class RequestLog(BatchWriter[tuple[Any, ...]]):
    name = "request-log"

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.25,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, flush_interval_s=flush_interval_s, on_drop=on_drop)
        self.url = url

    def open(self) -> None:
        conn = connect(self.url)
        try:
            applied = migrate(conn)
            if applied:
                logger.info("request log migrated: %s", ", ".join(applied))
        finally:
            conn.close()
        self.start()

    def append(self, ctx: RequestContext) -> None:
        """Finisher: the request's row, queued for the writer thread."""
        self.add(row_of(ctx))

    def connect(self) -> sqlite3.Connection:
        return connect(self.url)

    def write(self, conn: sqlite3.Connection, batch: Sequence[tuple[Any, ...]]) -> None:
        with conn:
            conn.executemany(_INSERT, batch)
