"""The request log: one row per request, written off the hot path by a batching thread.

`append` costs a tuple and a queue put. A writer thread drains the queue every
`flush_interval_s` (or at `batch_size` rows) into SQLite in WAL mode in one transaction.
`close` writes what is left: the app's lifespan calls it on shutdown, SIGTERM included.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thrifty.gateway.context import RequestContext
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
_STOP = object()


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


class RequestLog:
    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.25,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.on_drop = on_drop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._flushed = threading.Condition()
        self._pending = 0

    def open(self) -> None:
        conn = connect(self.url)
        try:
            applied = migrate(conn)
            if applied:
                logger.info("request log migrated: %s", ", ".join(applied))
        finally:
            conn.close()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def append(self, ctx: RequestContext) -> None:
        with self._flushed:
            self._pending += 1
        self._queue.put(row_of(ctx))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every row appended so far is written (tests and reports use this)."""
        with self._flushed:
            return self._flushed.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        conn = connect(self.url)
        stopping = False
        try:
            while not stopping:
                batch: list[tuple[Any, ...]] = []
                try:
                    item = self._queue.get(timeout=self.flush_interval_s)
                except queue.Empty:
                    continue
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                    if len(batch) >= self.batch_size:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._write(conn, batch)
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: Sequence[tuple[Any, ...]]) -> None:
        written = False
        for attempt in range(5):
            try:
                with conn:
                    conn.executemany(_INSERT, batch)
                written = True
                break
            except sqlite3.OperationalError as exc:  # locked by a report or another process
                logger.warning("request log write failed (attempt %d): %s", attempt + 1, exc)
                threading.Event().wait(0.2 * (attempt + 1))
            except Exception:  # a bad row must not kill the writer: count the batch as dropped
                logger.exception("request log batch could not be written")
                break
        if not written:
            logger.error("dropped %d request-log rows", len(batch))
            if self.on_drop:
                self.on_drop(len(batch))
        with self._flushed:
            self._pending -= len(batch)
            self._flushed.notify_all()
