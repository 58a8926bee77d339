"""A background writer that takes items from the hot path and writes them in batches.

The request log and the audit log both need the same thing: `add` must cost the event loop
next to nothing, rows must reach the database soon, and nothing accepted may be lost on a
clean shutdown. So `add` only appends to a queue; a thread wakes every `flush_interval_s`
(not on every item: waking a thread per request costs more CPU than the write itself), drains
the queue and writes it in batches of at most `batch_size`, retrying a locked database.
`flush()` wakes it at once and waits; `close()` writes what is left and stops it.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from thrifty.store.migrations import migrate
from thrifty.store.sqlite import connect

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
_RETRIES = 5


class BatchWriter(Generic[Item]):
    """Subclasses say how to connect and how to write one batch in one transaction."""

    name = "batch-writer"

    def __init__(
        self,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.25,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.on_drop = on_drop
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = False
        self._added = 0  # only the event loop's thread adds
        self._done = 0  # written or dropped; only the writer thread counts
        self._done_changed = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- what subclasses provide ----------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        raise NotImplementedError

    def write(self, conn: sqlite3.Connection, batch: Sequence[Item]) -> None:
        """Write one batch in one transaction (raise sqlite3.OperationalError to retry)."""
        raise NotImplementedError

    # -- the hot path ---------------------------------------------------------------------------

    def add(self, item: Item) -> None:
        self._added += 1
        self._queue.put(item)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything added so far is written (or dropped)."""
        target = self._added
        self._wake.set()
        with self._done_changed:
            return self._done_changed.wait_for(lambda: self._done >= target, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        conn = self.connect()
        try:
            while True:
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
                stopping = self._stop  # read before draining: nothing added before close is missed
                self._drain(conn)
                if stopping:
                    return
        finally:
            conn.close()

    def _drain(self, conn: sqlite3.Connection) -> None:
        while True:
            batch: list[Item] = []
            try:
                while len(batch) < self.batch_size:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if not batch:
                return
            self._write_with_retries(conn, batch)
            with self._done_changed:
                self._done += len(batch)
                self._done_changed.notify_all()

    def _write_with_retries(self, conn: sqlite3.Connection, batch: list[Item]) -> None:
        for attempt in range(1, _RETRIES + 1):
            try:
                self.write(conn, batch)
                return
            except sqlite3.OperationalError as exc:  # locked by a report or another process
                logger.warning("%s: write failed (attempt %d): %s", self.name, attempt, exc)
                threading.Event().wait(0.2 * attempt)
            except Exception:  # a bad row must not kill the writer
                logger.exception("%s: batch could not be written", self.name)
                break
        logger.error("%s: dropped %d rows", self.name, len(batch))
        if self.on_drop is not None:
            self.on_drop(len(batch))


class SQLiteWriter(BatchWriter[Item]):
    """A batch writer into the SQLite database at `url`, migrated when opened."""

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
                logger.info("database migrated: %s", ", ".join(applied))
        finally:
            conn.close()
        self.start()

    def connect(self) -> sqlite3.Connection:
        return connect(self.url)
