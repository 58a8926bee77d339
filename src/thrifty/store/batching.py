"""A background writer that takes items from the hot path and writes them in batches.

The request log and the audit log both need the same thing: `add` must cost the event loop
next to nothing, rows must reach the database soon, and nothing accepted may be lost while the
database is away for a while. So `add` only appends to a queue; a thread wakes every
`flush_interval_s` (not on every item: waking a thread per request costs more CPU than the
write itself), moves the queue into its buffer and writes the buffer in batches of at most
`batch_size`, one transaction each.

When the database cannot be reached (a PostgreSQL restart, a locked SQLite file) the batch stays
at the head of the buffer: the thread drops the connection, waits (doubling, up to
`_MAX_BACKOFF_S`), reconnects and writes it again. Rows still arrive meanwhile; the buffer holds
up to `max_buffered` of them and only what comes beyond that is dropped, counted by `on_drop`.
A batch the database refuses for what it holds (not for being away) is dropped and counted
too: retrying it would refuse it again and hold up every row behind it.

`flush()` wakes the thread and waits until everything added so far is written (or dropped);
`close()` writes what is left, giving a database that stays away `close_timeout_s` before the
rest is counted as dropped.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from thrifty.store.db import Connection, TransientError, connect, redact
from thrifty.store.migrations import migrate

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 5.0


class BatchWriter(Generic[Item]):
    """Writes items into the database at `url` (migrated when opened); subclasses say how."""

    name = "batch-writer"

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 256,
        flush_interval_s: float = 0.25,
        max_buffered: int = 100_000,
        close_timeout_s: float = 10.0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self.close_timeout_s = close_timeout_s
        self.on_drop = on_drop
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._buffer: collections.deque[Item] = collections.deque()  # the writer thread's
        self._wake = threading.Event()
        self._stop = False
        self._added = 0  # only the event loop's thread adds
        self._done = 0  # written or dropped; only the writer thread counts
        self._done_changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._down_since: float | None = None  # when the database went away
        self.dropped = 0

    # -- what subclasses provide ----------------------------------------------------------------

    def write(self, conn: Connection, batch: Sequence[Item]) -> None:
        """Write one batch in one transaction."""
        raise NotImplementedError

    def before_take(self) -> None:
        """The writer thread is about to take the queue (a spool seals its file here)."""

    def caught_up(self) -> None:
        """Everything taken so far is written or dropped (a spool deletes its files here)."""

    # -- the hot path ---------------------------------------------------------------------------

    def add(self, item: Item) -> None:
        self._added += 1
        self._queue.put(item)

    @property
    def buffered(self) -> int:
        """Rows accepted and not yet written (the metrics' gauge)."""
        return self._added - self._done

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Migrate the database and start the thread (an unreachable database fails here)."""
        with connect(self.url) as conn:
            applied = migrate(conn)
        if applied:
            logger.info("database %s migrated: %s", redact(self.url), ", ".join(applied))
        self.start()

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
            self._thread.join(timeout=self.close_timeout_s + 30)
            self._thread = None

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        deadline: float | None = None
        try:
            while True:
                self._wake.wait(backoff or self.flush_interval_s)
                self._wake.clear()
                stopping = self._stop  # read before draining: nothing added before close is missed
                self.before_take()
                self._take()
                if self._write_buffer():
                    backoff = 0.0
                    self.caught_up()
                else:
                    backoff = min(max(2 * backoff, _FIRST_BACKOFF_S), _MAX_BACKOFF_S)
                if stopping:
                    if not self._buffer:
                        return
                    deadline = deadline or time.monotonic() + self.close_timeout_s
                    if time.monotonic() >= deadline:
                        logger.error(
                            "%s: database still unreachable at shutdown; %d rows lost",
                            self.name,
                            len(self._buffer),
                        )
                        self._drop(len(self._buffer))
                        self._buffer.clear()
                        return
        finally:
            self._disconnect()

    def _take(self) -> None:
        """Move the queue into the buffer; what the buffer has no room for is dropped."""
        overflow = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if len(self._buffer) < self.max_buffered:
                self._buffer.append(item)
            else:
                overflow += 1
        if overflow:
            logger.error(
                "%s: %d rows dropped: %d already wait for the database (store.max_buffered_rows)",
                self.name,
                overflow,
                len(self._buffer),
            )
            self._drop(overflow)

    def _write_buffer(self) -> bool:
        """Write the buffer, batch by batch; False when the database went away meanwhile."""
        while self._buffer:
            batch = list(itertools.islice(self._buffer, self.batch_size))
            try:
                if self._conn is None:
                    self._conn = connect(self.url)
                self.write(self._conn, batch)
            except TransientError as exc:
                self._disconnect()
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    logger.warning(
                        "%s: database unreachable (%s); keeping rows and retrying", self.name, exc
                    )
                return False
            except Exception:  # refused for what the rows hold: retrying cannot help
                logger.exception("%s: batch of %d rows refused, dropped", self.name, len(batch))
                self._drop(len(batch))
            else:
                self._written(len(batch))
            for _ in batch:
                self._buffer.popleft()
            if self._down_since is not None:
                logger.info(
                    "%s: database back after %.1f s; writing %d buffered rows",
                    self.name,
                    time.monotonic() - self._down_since,
                    len(self._buffer),
                )
                self._down_since = None
        return True

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _drop(self, n: int) -> None:
        self.dropped += n
        if self.on_drop is not None:
            self.on_drop(n)
        self._written(n)

    def _written(self, n: int) -> None:
        with self._done_changed:
            self._done += n
            self._done_changed.notify_all()
