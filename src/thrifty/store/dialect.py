"""What every database backend shares: its errors, the dialect protocol, how text is stored.

`thrifty.store.db` (the factory, above the backends) and the backends (`sqlite`, `postgres`)
import this; callers import the names from `thrifty.store.db`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, Protocol

TransactionKind = Literal["write", "exclusive", "snapshot"]


class DatabaseError(Exception):
    """Anything the database refused."""


class TransientError(DatabaseError):
    """Worth retrying: the server is gone or restarting, the database locked, the disk busy."""


class IntegrityError(DatabaseError):
    """A constraint or an append-only trigger refused the statement."""


class MissingTable(DatabaseError):
    """A table the statement names does not exist (a database nothing has migrated yet)."""


class NoDatabase(DatabaseError):
    """`connect(..., create=False)` on a SQLite file that does not exist."""


class Cursor(Protocol):
    """What both drivers' cursors offer and the store uses."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Dialect(Protocol):
    """One backend: its driver connection, its SQL, its transactions, its errors."""

    name: str

    def connect(self, url: str, create: bool) -> Any:
        """A driver connection in autocommit mode whose rows read by position and by name."""

    def query(self, sql: str) -> str:
        """A statement with ``?`` placeholders, as the driver takes it."""

    def ddl(self, statement: str) -> list[str]:
        """One statement of a migration, as the statements this backend runs."""

    def begin(self, kind: TransactionKind) -> list[str]:
        """The statements that open a transaction of `kind`."""

    def error(self, exc: Exception, raw: Any) -> type[DatabaseError] | None:
        """Which of our errors a driver exception is; None when it is not the driver's."""


def storable_text(text: str) -> str:
    """`text` as every backend stores it: PostgreSQL refuses NUL in text, so U+FFFD stands in.

    The PostgreSQL dialect applies it to every string parameter (a client's model name must not
    get a whole batch of log rows refused); the audit log applies it before hashing, so a chain
    verifies the same on either backend.
    """
    return text.replace("\x00", "\ufffd")
