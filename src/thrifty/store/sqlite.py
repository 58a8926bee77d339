"""The SQLite dialect: WAL, NORMAL sync, rows by name, and the SQL exactly as written.

The store's SQL is written in SQLite's flavour, so nothing is translated here. Transient errors
are told apart by SQLite's result code, not by exception class: sqlite3 raises the same
OperationalError for a locked database (retry) and for a syntax error (never retry).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from thrifty.store.dialect import (
    DatabaseError,
    IntegrityError,
    MissingTable,
    NoDatabase,
    TransactionKind,
    TransientError,
)

# primary result codes: busy, locked, I/O error, disk full, cannot open, lock protocol
_TRANSIENT_CODES = frozenset({5, 6, 10, 13, 14, 15})
_BEGIN: dict[TransactionKind, list[str]] = {
    # a deferred write transaction that reads first fails at once (SQLITE_BUSY_SNAPSHOT, no
    # busy wait) when another connection wrote meanwhile; IMMEDIATE waits for the lock instead
    "write": ["BEGIN IMMEDIATE"],
    "exclusive": ["BEGIN IMMEDIATE"],
    "snapshot": ["BEGIN"],  # WAL: a read transaction sees one snapshot from its first read
}


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {url!r} (expected sqlite:///path)")
    return Path(url.removeprefix("sqlite:///")).expanduser()


class SQLite:
    name = "sqlite"

    def connect(self, url: str, create: bool) -> sqlite3.Connection:
        path = sqlite_path(url)
        if not create and not path.exists():
            raise NoDatabase(f"no database at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; `Connection.transaction` issues BEGIN/COMMIT itself
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str) -> str:
        return sql

    def ddl(self, statement: str) -> list[str]:
        return [statement]

    def begin(self, kind: TransactionKind) -> list[str]:
        return _BEGIN[kind]

    def error(self, exc: Exception, raw: Any) -> type[DatabaseError] | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        if isinstance(exc, sqlite3.IntegrityError):
            return IntegrityError
        if isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc):
            return MissingTable
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _TRANSIENT_CODES:
            return TransientError
        return DatabaseError
