"""The PostgreSQL dialect, over psycopg 3 (the ``postgres`` extra), imported only when used.

Rows read by position (a tuple) and by name (``row["ts"]``, ``dict(row)``), as sqlite3.Row
does. ``exclusive`` transactions take one transaction-scoped advisory lock, so the writers that
SQLite serializes with ``BEGIN IMMEDIATE`` (audit chain appends, key changes, migrations) take
turns here too, across processes; they are released at COMMIT or ROLLBACK, and when a
connection dies. ``snapshot`` is REPEATABLE READ: under the default READ COMMITTED each statement
would see a newer moment.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

from thrifty.store import pgsql
from thrifty.store.dialect import (
    DatabaseError,
    IntegrityError,
    MissingTable,
    TransactionKind,
    TransientError,
    storable_text,
)

# one lock for every exclusive writer of a database: "thrifty" in ASCII
_LOCK_KEY = 0x746872696674
_BEGIN: dict[TransactionKind, list[str]] = {
    "write": ["BEGIN"],
    "exclusive": ["BEGIN", f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"],
    "snapshot": ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"],
}
_CONNECT_TIMEOUT_S = 10


class Row(tuple[Any, ...]):
    """A result row: a tuple that also answers by column name, like sqlite3.Row."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}  # set by `_row_class` for each column list

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _rows(cursor: Any) -> Any:
    """psycopg row factory: one Row class per column list, shared by every row."""
    description = cursor.description
    row = _row_class(tuple(c.name for c in description) if description else ())

    def make(values: Sequence[Any]) -> Row:
        return row(values)

    return make


@functools.cache
def _text_dumper() -> type:
    """psycopg's dumper for str (sent untyped, as psycopg does), through `storable_text`."""
    from psycopg.types.string import StrDumperUnknown

    class StorableText(StrDumperUnknown):
        def dump(self, obj: str) -> Any:
            return super().dump(storable_text(obj))

    return StorableText


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "PostgreSQL needs psycopg: pip install 'thrifty[postgres]' (psycopg[binary])"
        ) from None
    return psycopg


class PostgreSQL:
    name = "postgresql"

    def connect(self, url: str, create: bool) -> Any:
        # `create` is about SQLite files; a PostgreSQL database is made by its administrator
        psycopg = _psycopg()
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": _rows}
        if "connect_timeout" not in url:
            kwargs["connect_timeout"] = _CONNECT_TIMEOUT_S
        conn = psycopg.connect(url, **kwargs)
        conn.adapters.register_dumper(str, _text_dumper())
        return conn

    def query(self, sql: str) -> str:
        return pgsql.query(sql)

    def ddl(self, statement: str) -> list[str]:
        return pgsql.ddl(statement)

    def begin(self, kind: TransactionKind) -> list[str]:
        return _BEGIN[kind]

    def error(self, exc: Exception, raw: Any) -> type[DatabaseError] | None:
        psycopg = _psycopg()
        if not isinstance(exc, psycopg.Error):
            return None
        errors = psycopg.errors
        if isinstance(exc, errors.UndefinedTable):
            return MissingTable
        if isinstance(exc, psycopg.IntegrityError):
            return IntegrityError
        if isinstance(exc, psycopg.OperationalError):  # lost server, shutdown, deadlock, …
            return TransientError
        if raw is not None and (raw.closed or raw.broken):
            return TransientError  # whatever it says, the connection is gone: reconnect
        return DatabaseError
