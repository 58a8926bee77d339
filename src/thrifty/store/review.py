"""The moderation review queue: a sample of flagged requests, for a person to mark ok or bad.

`ReviewQueue.add` is called when a request is finished (moderation's on_finish), so it only hands
the item to one writer thread; `ReviewStore` is the plain database access that the writer and
`thrifty review` share. The table is created by the `0004_moderation_review` migration.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.store.db import DatabaseError, connect
from thrifty.store.migrations import migrate

logger = logging.getLogger(__name__)

Verdict = Literal["ok", "bad"]
VERDICTS: tuple[Verdict, ...] = ("ok", "bad")


@dataclass(frozen=True, slots=True)
class ReviewItem:
    request_id: str
    tenant: str
    key_id: str | None
    model: str
    direction: str  # input | output
    action: str  # the strongest action taken: block | mask | flag
    lists: str  # comma-separated list names that matched
    excerpt: str  # the text around the matches, as the gateway saw it
    ts: float = field(default_factory=time.time)


_COLUMNS = "request_id, ts, tenant, key_id, model, direction, action, lists, excerpt"


class ReviewStore:
    """Access to the review queue (one connection; not shared between threads)."""

    def __init__(self, url: str) -> None:
        self.conn = connect(url)
        migrate(self.conn)

    def add(self, items: list[ReviewItem]) -> None:
        rows = [
            (i.request_id, i.ts, i.tenant, i.key_id, i.model, i.direction, i.action, i.lists,
             i.excerpt)
            for i in items
        ]  # fmt: skip
        with self.conn.transaction():
            self.conn.executemany(
                f"INSERT INTO moderation_review ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def list(self, *, verdict: str | None = "pending", limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; verdict: pending (not yet marked), ok, bad, or None for all."""
        where, args = "", []
        if verdict == "pending":
            where = "WHERE verdict IS NULL"
        elif verdict is not None:
            where, args = "WHERE verdict = ?", [verdict]
        rows = self.conn.execute(
            f"SELECT * FROM moderation_review {where} ORDER BY id DESC LIMIT ?", [*args, limit]
        )
        return [dict(row) for row in rows]

    def mark(self, item_id: int, verdict: Verdict, note: str | None = None) -> bool:
        """Record a reviewer's verdict; False when there is no such item."""
        cur = self.conn.execute(
            "UPDATE moderation_review SET verdict = ?, note = ?, reviewed_at = ? WHERE id = ?",
            (verdict, note, time.time(), item_id),
        )
        return cur.rowcount == 1

    def close(self) -> None:
        self.conn.close()


class ReviewQueue:
    """Writes sampled items off the event loop, on one thread of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: ThreadPoolExecutor | None = None
        self._store: ReviewStore | None = None

    def open(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="review-queue")

    def add(self, item: ReviewItem) -> None:
        if self._pool is None:
            logger.warning("review queue is not open; dropped %s", item.request_id)
            return
        self._pool.submit(self._write, item)

    def _write(self, item: ReviewItem) -> None:
        try:
            if self._store is None:
                self._store = ReviewStore(self.url)
            self._store.add([item])
        except DatabaseError:
            logger.exception("could not queue %s for review", item.request_id)
            self._close_store()  # the next item opens a fresh connection

    def flush(self) -> None:
        """Wait until every item added so far is written (tests use this)."""
        if self._pool is not None:
            self._pool.submit(lambda: None).result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.submit(self._close_store)
            self._pool.shutdown(wait=True)
            self._pool = None

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
