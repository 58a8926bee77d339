"""A write-ahead spool: a request's log row is on disk before its client gets the answer.

The batch writer lands rows in the database a moment later (every flush interval). A replica
killed in that moment (kill -9, the OOM killer) would lose the rows of requests it had already
answered. So the hot path also writes each row, one JSON line, to a spool file of this
process's own: one write(2), which the kernel keeps however the process dies. Once the writer
has committed everything, the files are deleted. A process that opens the same spool directory
(the replica restarted in the same home, as Kubernetes restarts a container in its pod) adopts
the files of owners that are gone and replays them: rows are keyed by request id and inserted
only if absent, so a replay never makes a duplicate.

Ownership is a lock file held with flock(2) for the process's life: the kernel drops the lock
when the process dies, whatever killed it, so "the lock is free" means "the owner is gone".
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)


class Spool:
    """This process's spool files in `directory`: appended by the hot path, cut by the writer."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.lock = threading.Lock()  # `append` and `seal` exclude each other
        self._lock_fd = -1
        self._fd = -1
        self._seq = 0
        self._sealed: list[Path] = []
        self._retained = False  # some sealed rows were dropped: leave files for the next owner
        self._dirty = False  # appended since the last seal

    def open(self) -> list[tuple[Any, ...]]:
        """Take ownership of a new spool; return the rows of dead owners' spools to replay."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # locked before it gets its name: no one may see the file unlocked and think us dead
        pending = self._path("lock.new")
        self._lock_fd = os.open(pending, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        pending.rename(self._path("lock"))
        orphans = list(self._adopt())
        self._fd = self._new_segment()
        return orphans

    def append(self, line: bytes) -> None:
        """Called with `lock` held (the caller queues the row under the same lock)."""
        os.write(self._fd, line)
        self._dirty = True

    @staticmethod
    def encode(row: tuple[Any, ...]) -> bytes:
        return orjson.dumps(row) + b"\n"

    def seal(self) -> None:
        """Called with `lock` held: what was appended so far is in sealed files."""
        if not self._dirty:
            return
        self._dirty = False
        os.close(self._fd)
        self._sealed.append(self._path(f"{self._seq}.jsonl"))
        self._seq += 1
        self._fd = self._new_segment()

    def committed(self) -> None:
        """Every sealed row is in the database: their files can go."""
        if self._retained:
            return
        for path in self._sealed:
            path.unlink(missing_ok=True)
        self._sealed.clear()

    def retain(self) -> None:
        """Some rows never reached the database: keep every file for the next owner to replay."""
        if not self._retained:
            logger.error(
                "request-log rows were dropped; %s keeps them for a restart", self.directory
            )
        self._retained = True

    def close(self, *, clean: bool) -> None:
        """`clean`: every row was committed, so nothing is left to replay."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if clean and not self._retained:
            self._sealed.append(self._path(f"{self._seq}.jsonl"))
            self.committed()
            self._path("lock").unlink(missing_ok=True)
        os.close(self._lock_fd)  # releases the flock: a later process may adopt what is left

    # -- internals ------------------------------------------------------------------------------

    def _path(self, suffix: str, owner: str | None = None) -> Path:
        return self.directory / f"{owner or self.owner}.{suffix}"

    def _new_segment(self) -> int:
        flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND
        return os.open(self._path(f"{self._seq}.jsonl"), flags, 0o600)

    def _adopt(self) -> Iterator[tuple[Any, ...]]:
        """Rows of every owner whose lock is free; their files become ours (sealed)."""
        for lock_path in sorted(self.directory.glob("*.lock")):
            owner = lock_path.name.removesuffix(".lock")
            if owner == self.owner or not _owner_gone(lock_path):
                continue
            segments = sorted(
                self.directory.glob(f"{owner}.*.jsonl"),
                key=lambda p: int(p.name.split(".")[1]),
            )
            rows = 0
            for segment in segments:
                for line in segment.read_bytes().splitlines():
                    try:
                        yield tuple(orjson.loads(line))
                        rows += 1
                    except orjson.JSONDecodeError:  # the last line of a write cut short
                        logger.warning("spool %s: skipped a partial line", segment.name)
                self._sealed.append(segment)
            lock_path.unlink(missing_ok=True)
            if rows:
                logger.warning("replaying %d request-log rows a stopped process left", rows)


def _owner_gone(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner holds it: alive
    finally:
        os.close(fd)  # (closing drops the lock we may have taken)
    return True
