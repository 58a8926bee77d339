"""The request log: one row per request, written off the hot path by a batching thread.

`append` costs a tuple, one write(2) to this process's spool file and a queue put;
`BatchWriter` writes the rows in batches (SQLite or PostgreSQL), keeping them through a
database restart, and the spool keeps them through this process's death (store/spool.py).
`close` writes what is left: the app's lifespan calls it on shutdown, SIGTERM included.
``INSERT OR IGNORE``: a batch retried after a connection lost at COMMIT, or a spool replayed,
may already be in; the request id keeps each row once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thrifty.context import RequestContext
from thrifty.store.batching import BatchWriter
from thrifty.store.db import Connection
from thrifty.store.spool import Spool

logger = logging.getLogger(__name__)

COLUMNS = (
    "id", "ts", "tenant", "key_id", "endpoint", "model", "route", "reason", "upstream_model",
    "stream", "prompt_tokens", "completion_tokens", "cached_tokens", "latency_ms", "ttft_ms",
    "cost_nanos", "baseline_nanos", "status", "error_code", "pii", "cache", "variant",
    "trace_id",
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
        ctx.reason_header,
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
        # the tracer names the trace in the answer's headers (thrifty.gateway.tracing)
        ctx.response_headers.get("x-thrifty-trace-id"),
    )


def _cached_tokens(usage: dict[str, Any]) -> int:
    hit = usage.get("prompt_cache_hit_tokens")
    if hit is None:
        details = usage.get("prompt_tokens_details")
        hit = details.get("cached_tokens") if isinstance(details, dict) else 0
    return int(hit or 0)


class RequestLog(BatchWriter[tuple[Any, ...]]):
    """The batch writer of `requests`; with a spool, a row is on disk before its answer leaves."""

    name = "request-log"

    def __init__(self, url: str, *, spool: Path | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self.spool = Spool(spool) if spool is not None else None
        self._dropped_seen = 0

    def open(self) -> None:
        orphans = self.spool.open() if self.spool is not None else []
        super().open()
        for row in orphans:  # rows a killed process had acknowledged; the id keeps them once
            # a spool written before a column was added has shorter rows: the new ones are NULL
            self.add((*row, *(None,) * (len(COLUMNS) - len(row))))

    def append(self, ctx: RequestContext) -> None:
        """Finisher: the request's row, spooled and queued for the writer thread."""
        row = row_of(ctx)
        spool = self.spool
        if spool is None:
            self.add(row)
            return
        line = Spool.encode(row)
        with spool.lock:
            spool.append(line)
            self.add(row)

    def before_take(self) -> None:
        if self.spool is not None:
            with self.spool.lock:  # every row of the sealed files is in the queue now
                self.spool.seal()

    def caught_up(self) -> None:
        if self.spool is None:
            return
        if self.dropped > self._dropped_seen:  # some rows live on only in the spool: keep it
            self._dropped_seen = self.dropped
            self.spool.retain()
        else:
            self.spool.committed()

    def close(self) -> None:
        super().close()
        if self.spool is not None:
            self.spool.close(clean=self.buffered == 0)

    def write(self, conn: Connection, batch: Sequence[tuple[Any, ...]]) -> None:
        with conn.transaction():
            conn.executemany(_INSERT, batch)
