"""Named, idempotent schema migrations. Append new ones; never edit one that has shipped."""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_requests",
        """
        CREATE TABLE requests (
            id                TEXT PRIMARY KEY,
            ts                REAL    NOT NULL,  -- unix time the request arrived
            tenant            TEXT    NOT NULL,
            key_id            TEXT,
            endpoint          TEXT    NOT NULL,  -- chat | completions
            model             TEXT    NOT NULL,  -- the model the client asked for
            route             TEXT    NOT NULL,  -- cache | local | upstream alias | '' (refused)
            reason            TEXT    NOT NULL,
            upstream_model    TEXT,
            stream            INTEGER NOT NULL,
            prompt_tokens     INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens     INTEGER NOT NULL DEFAULT 0,
            latency_ms        REAL    NOT NULL,
            ttft_ms           REAL,
            cost_nanos        INTEGER,           -- billed cost, 1e-9 USD (exact)
            baseline_nanos    INTEGER,           -- the all-cloud baseline's cost, 1e-9 USD
            status            INTEGER NOT NULL,  -- HTTP status the client got
            error_code        TEXT,
            pii               TEXT    NOT NULL DEFAULT '',  -- comma-separated kinds found
            cache             TEXT    NOT NULL DEFAULT '',
            variant           TEXT
        );
        CREATE INDEX requests_ts ON requests (ts);
        CREATE INDEX requests_tenant_ts ON requests (tenant, ts);
        """,
    ),
]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply what has not been applied; return the names applied now."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        with conn:
            conn.executescript(f"BEGIN;{sql}")
            conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied
