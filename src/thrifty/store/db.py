"""One connection interface over SQLite and PostgreSQL, chosen by the database URL.

Store modules write their SQL once, in SQLite's flavour (``?`` placeholders, ``INSERT OR
IGNORE``, migrations in REAL/INTEGER/TEXT), and run it through `Connection`; a `Dialect` says
how one backend connects, begins a transaction and names its errors, and the PostgreSQL dialect
translates the SQL (`thrifty.store.pgsql`) in that one place. psycopg is imported only when a
``postgresql://`` URL is opened, so a gateway on SQLite never loads it.

A connection is in autocommit mode: a single statement commits on its own, and `transaction`
groups several. Its kind replaces what SQLite code used to spell by hand: ``exclusive`` is
``BEGIN IMMEDIATE`` on SQLite and a transaction-scoped advisory lock on PostgreSQL (the audit
chain and the migrations need one writer at a time, across processes); ``snapshot`` is a
read-only transaction whose statements all see one moment.

Driver exceptions come out as this module's (`TransientError`, `IntegrityError`,
`MissingTable`, …), so no caller imports a driver to catch one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from thrifty.store.dialect import (
    Cursor,
    DatabaseError,
    Dialect,
    IntegrityError,
    MissingTable,
    NoDatabase,
    TransactionKind,
    TransientError,
    storable_text,
)
from thrifty.store.postgres import PostgreSQL
from thrifty.store.sqlite import SQLite

__all__ = [
    "Connection",
    "Cursor",
    "DatabaseError",
    "Dialect",
    "IntegrityError",
    "MissingTable",
    "NoDatabase",
    "TransactionKind",
    "TransientError",
    "connect",
    "redact",
    "storable_text",
]


class Connection:
    """A driver connection behind one interface; not for use by two threads at once."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            cursor: Cursor = self.raw.execute(self.dialect.query(sql), params)
        except Exception as exc:
            raise self._translate(exc) from exc
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self.raw.cursor().executemany(self.dialect.query(sql), rows)
        except Exception as exc:
            raise self._translate(exc) from exc

    def ddl(self, statement: str) -> None:
        """Run one migration statement (SQLite-flavoured DDL, translated where it must be)."""
        for translated in self.dialect.ddl(statement):
            try:
                self.raw.execute(translated)
            except Exception as exc:
                raise self._translate(exc) from exc

    @contextlib.contextmanager
    def transaction(self, kind: TransactionKind = "write") -> Iterator[Connection]:
        """Commit what the block did, or roll it back when the block raises."""
        for statement in self.dialect.begin(kind):
            self.execute(statement)
        try:
            yield self
        except BaseException:
            with contextlib.suppress(DatabaseError):  # a lost connection rolls back by itself
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection must not raise
            self.raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _translate(self, exc: Exception) -> Exception:
        kind = self.dialect.error(exc, self.raw)
        return exc if kind is None else kind(str(exc))


def dialect_of(url: str) -> Dialect:
    """The dialect a URL names: ``sqlite:///path`` or ``postgresql://…`` (``postgres://`` too)."""
    if url.startswith("sqlite:///"):
        return SQLite()
    if url.startswith(("postgresql://", "postgres://")):
        return PostgreSQL()
    raise ValueError(
        f"unsupported database URL {redact(url)!r} (expected sqlite:///path or postgresql://…)"
    )


def connect(url: str, *, create: bool = True) -> Connection:
    """Open the database at `url`; `create=False` raises NoDatabase for a missing SQLite file.

    A server that cannot be reached raises TransientError (its message never holds the URL's
    password: drivers name the host and port, not the credentials).
    """
    dialect = dialect_of(url)
    try:
        raw = dialect.connect(url, create)
    except (DatabaseError, ValueError):
        raise
    except Exception as exc:
        kind = dialect.error(exc, None)
        if kind is None:
            raise
        raise kind(str(exc)) from exc
    return Connection(raw, dialect)


_USERINFO_PASSWORD = re.compile(r"(?<=://)([^:/@]*):[^/]*@")
_QUERY_PASSWORD = re.compile(r"(?<=[?&])password=[^&]*", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with its password, if any, replaced by ``***`` (for logs and error messages)."""
    url = _USERINFO_PASSWORD.sub(r"\1:***@", url)
    return _QUERY_PASSWORD.sub("password=***", url)
