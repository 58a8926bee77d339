"""Persistence: the database and its batch writers."""

from __future__ import annotations

from pydantic import Field

from thrifty.config._base import _Section


class StoreSettings(_Section):
    database_url: str | None = Field(
        None,
        description="Database of the request log, keys and audit log: sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST:PORT/DB (also $THRIFTY_DATABASE_URL); default: SQLite "
        "at $THRIFTY_HOME/thrifty.db.",
    )
    batch_size: int = Field(256, description="Rows written per batch by the request-log writer.")
    flush_interval_s: float = Field(0.25, description="Longest a row waits before it is written.")
    max_buffered_rows: int = Field(
        100_000,
        description="Rows each log writer keeps while the database is unreachable; rows beyond "
        "are dropped and counted (thrifty_store_dropped_rows_total).",
        ge=1,
    )
    spool: bool = Field(
        True,
        description="Write each request-log row to $THRIFTY_HOME/spool before the answer leaves, "
        "so a process killed before its batch is written loses none: the next process started "
        "in this home writes them.",
    )
