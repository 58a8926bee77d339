"""Named, idempotent schema migrations. Append new ones; never edit one that has shipped.

The SQL is SQLite's, in a portable style (TEXT, REAL, INTEGER, INTEGER PRIMARY KEY, indexes,
refusing triggers): the PostgreSQL dialect translates it (`thrifty.store.pgsql`), so both
backends run the same list.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from thrifty.store.db import Connection

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
    (
        "0002_api_keys",
        """
        CREATE TABLE api_keys (
            id              TEXT PRIMARY KEY,      -- public id, key_…: what logs and audits name
            secret_hash     TEXT NOT NULL UNIQUE,  -- sha256 hex of the secret (never the secret)
            tenant          TEXT NOT NULL,
            role            TEXT NOT NULL,         -- admin | user | viewer
            models          TEXT,                  -- JSON list of model names; NULL: every model
            rpm             INTEGER,
            tpm             INTEGER,
            daily_tokens    INTEGER,
            daily_usd_nanos INTEGER,               -- 1e-9 USD
            tags            TEXT NOT NULL DEFAULT '[]',  -- JSON list
            created_at      REAL NOT NULL,
            expires_at      REAL,
            revoked_at      REAL,
            updated_at      REAL NOT NULL
        );
        CREATE INDEX api_keys_tenant ON api_keys (tenant);
        -- one row, bumped in the same transaction as every key change: gateways poll it
        CREATE TABLE keys_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
        INSERT INTO keys_version VALUES (1, 0);
        """,
    ),
    (
        "0003_audit_log",
        """
        CREATE TABLE audit_log (
            seq               INTEGER PRIMARY KEY,  -- 1, 2, 3 … without gaps
            ts                REAL    NOT NULL,
            action            TEXT    NOT NULL,     -- request | key.create | key.revoke | …
            actor             TEXT,                 -- key id; cli:<user> for the CLI
            tenant            TEXT,
            request_id        TEXT,
            endpoint          TEXT,
            model             TEXT,
            route             TEXT,
            status            INTEGER,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            cost_nanos        INTEGER,
            detail            TEXT    NOT NULL DEFAULT '{}',  -- JSON: what an admin action changed
            prev_hash         TEXT    NOT NULL,     -- previous row's hash; 64 zeros for the first
            hash              TEXT    NOT NULL      -- sha256 of this row's canonical form
        );
        CREATE INDEX audit_log_ts ON audit_log (ts);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
        """,
    ),
    (
        "0004_moderation_review",
        """
        CREATE TABLE moderation_review (
            id          INTEGER PRIMARY KEY,  -- what `thrifty review mark ID` takes
            request_id  TEXT    NOT NULL,
            ts          REAL    NOT NULL,     -- unix time of the request
            tenant      TEXT    NOT NULL,
            key_id      TEXT,
            model       TEXT    NOT NULL,
            direction   TEXT    NOT NULL,     -- input | output
            action      TEXT    NOT NULL,     -- block | mask | flag (the strongest taken)
            lists       TEXT    NOT NULL,     -- comma-separated word lists that matched
            excerpt     TEXT    NOT NULL,     -- the text around the matches
            verdict     TEXT,                 -- NULL (pending) | ok | bad
            note        TEXT,
            reviewed_at REAL
        );
        CREATE INDEX moderation_review_pending ON moderation_review (verdict, id);
        """,
    ),
    (
        "0005_feedback",
        """
        CREATE TABLE feedback (
            id          INTEGER PRIMARY KEY,
            request_id  TEXT    NOT NULL,  -- a requests.id of the same tenant; several allowed
            ts          REAL    NOT NULL,  -- unix time the feedback arrived
            tenant      TEXT    NOT NULL,
            key_id      TEXT,
            score       REAL,
            thumbs      INTEGER,           -- 1 up | 0 down | NULL
            converted   INTEGER,           -- 1 | 0 | NULL
            comment     TEXT
        );
        CREATE INDEX feedback_request ON feedback (request_id, id);
        """,
    ),
    (
        "0006_samples",
        """
        CREATE TABLE samples (
            id              TEXT PRIMARY KEY,  -- the request's id (requests.id)
            ts              REAL    NOT NULL,  -- unix time the request arrived
            tenant          TEXT    NOT NULL,
            route           TEXT    NOT NULL,  -- the upstream alias that answered
            upstream_model  TEXT,              -- the model name the upstream was sent
            messages        TEXT    NOT NULL,  -- JSON: the messages as the upstream received them
            answer          TEXT    NOT NULL,  -- the answer's text, as the upstream wrote it
            pii             TEXT    NOT NULL DEFAULT '',  -- comma-separated kinds found
            masked          INTEGER NOT NULL DEFAULT 0    -- 1: personal data left as placeholders
        );
        CREATE INDEX samples_ts ON samples (ts);
        """,
    ),
    (
        "0017_files_batches",
        """
        CREATE TABLE files (
            id          TEXT PRIMARY KEY,  -- file-…
            tenant      TEXT    NOT NULL,
            purpose     TEXT    NOT NULL,  -- batch | batch_output | batch_error | …
            filename    TEXT    NOT NULL,
            bytes       INTEGER NOT NULL,
            created_at  REAL    NOT NULL,
            content     TEXT    NOT NULL   -- JSONL, UTF-8
        );
        CREATE INDEX files_tenant ON files (tenant, created_at);
        CREATE TABLE batches (
            id                TEXT PRIMARY KEY,  -- batch_…
            tenant            TEXT    NOT NULL,
            key_id            TEXT,
            endpoint          TEXT    NOT NULL,  -- /v1/chat/completions | /v1/embeddings | …
            input_file_id     TEXT    NOT NULL,
            completion_window TEXT    NOT NULL,
            status            TEXT    NOT NULL,  -- OpenAI's: in_progress, finalizing, completed, …
            created_at        REAL    NOT NULL,
            expires_at        REAL    NOT NULL,
            not_before        REAL    NOT NULL,  -- start of the window the runner waits for
            run_window        TEXT    NOT NULL,  -- which window, in words (the cost report's)
            in_progress_at    REAL,
            finalizing_at     REAL,
            completed_at      REAL,
            cancelling_at     REAL,
            cancelled_at      REAL,
            failed_at         REAL,
            expired_at        REAL,
            output_file_id    TEXT,
            error_file_id     TEXT,
            metadata          TEXT,              -- JSON object or NULL
            lease_owner       TEXT,              -- the runner working on it
            lease_until       REAL
        );
        CREATE INDEX batches_tenant ON batches (tenant, created_at);
        CREATE INDEX batches_status ON batches (status);
        CREATE TABLE batch_lines (
            batch_id       TEXT    NOT NULL,
            line           INTEGER NOT NULL,  -- 1-based line number in the input file
            custom_id      TEXT    NOT NULL,
            body           TEXT    NOT NULL,  -- JSON request body
            status         TEXT    NOT NULL,  -- pending | done | failed
            status_code    INTEGER,
            request_id     TEXT,
            response       TEXT,              -- JSON: the answer, or the error envelope
            cost_nanos     INTEGER,
            baseline_nanos INTEGER,
            PRIMARY KEY (batch_id, line)
        );
        CREATE UNIQUE INDEX batch_lines_custom_id ON batch_lines (batch_id, custom_id);
        """,
    ),
    (
        "0018_outcomes",
        """
        CREATE TABLE outcomes (
            id          INTEGER PRIMARY KEY,
            ts          REAL    NOT NULL,  -- unix time the label was made
            source      TEXT    NOT NULL,  -- eval | shadow | feedback | ab
            ref         TEXT,              -- what makes it unique per source: run:item, request id
            request_id  TEXT,              -- the requests.id it labels, when one does
            tenant      TEXT    NOT NULL DEFAULT 'default',
            fingerprint TEXT    NOT NULL,  -- sha256 of the task key and the (masked) question
            task        TEXT    NOT NULL DEFAULT '',  -- the system prompt's hash (a task key)
            text        TEXT,              -- the last user turn, masked; NULL when unknown
            features    TEXT    NOT NULL DEFAULT '{}',  -- JSON: the cheap features
            target      TEXT    NOT NULL,  -- local, a local tier, or an upstream alias
            score       REAL,              -- the scorer's or judge's score, on its own scale
            ok          INTEGER,           -- 1: good enough, 0: not, NULL: unlabelled
            cost_nanos  INTEGER,           -- what the target's answer cost, 1e-9 USD
            detail      TEXT    NOT NULL DEFAULT ''   -- judge, variant, failed check ...
        );
        CREATE UNIQUE INDEX outcomes_ref ON outcomes (source, ref, target);
        CREATE INDEX outcomes_ts ON outcomes (ts);
        CREATE INDEX outcomes_fingerprint ON outcomes (fingerprint);
        """,
    ),
    (
        "0019_samples_reasoning",
        """
        -- a thinking model's reasoning (reasoning_content), kept apart from its answer; NULL: none
        ALTER TABLE samples ADD COLUMN reasoning TEXT;
        """,
    ),
    (
        "0020_requests_trace_id",
        """
        -- the OpenTelemetry trace id (32 hex digits) when traces are on; NULL: none
        ALTER TABLE requests ADD COLUMN trace_id TEXT;
        """,
    ),
    (
        "0021_route_evals",
        """
        -- `thrifty route eval`'s threshold sweeps, newest last: the console draws the latest
        CREATE TABLE route_evals (
            id      INTEGER PRIMARY KEY,
            ts      REAL NOT NULL,  -- unix time the sweep was made
            local   TEXT NOT NULL,  -- the two targets compared
            cloud   TEXT NOT NULL,
            result  TEXT NOT NULL   -- JSON: points (threshold, cloud share, quality, cost), APGR
        );
        """,
    ),
    (
        "0022_autopilot",
        """
        -- one row per autopilot cycle of one task; its steps below
        CREATE TABLE autopilot_runs (
            id         TEXT PRIMARY KEY,
            task       TEXT    NOT NULL,  -- the system prompt's key (outcomes.task)
            tenant     TEXT,              -- NULL: every tenant's traffic of the task
            system     TEXT    NOT NULL DEFAULT '',  -- the system prompt (its first 200 chars)
            status     TEXT    NOT NULL,  -- running | waiting | stopped | rejected | promoted |
                                          -- kept | rolled_back | failed
            candidate  TEXT,              -- the student's model name
            previous   TEXT,              -- what served the task before (NULL: the router)
            created    REAL    NOT NULL,
            updated    REAL    NOT NULL,
            decision   TEXT    NOT NULL DEFAULT '',
            why        TEXT    NOT NULL DEFAULT '',
            cpu_s      REAL    NOT NULL DEFAULT 0,  -- CPU seconds spent by its steps
            usd_nanos  INTEGER NOT NULL DEFAULT 0   -- cloud money spent by its calls, 1e-9 USD
        );
        CREATE INDEX autopilot_runs_task ON autopilot_runs (task, created);
        CREATE TABLE autopilot_steps (
            run_id    TEXT    NOT NULL,
            step      TEXT    NOT NULL,  -- collect | dataset | finetune | export | gate | ...
            seq       INTEGER NOT NULL,  -- the step's place in the cycle
            status    TEXT    NOT NULL,  -- running | done | failed | waiting
            attempts  INTEGER NOT NULL DEFAULT 1,
            started   REAL    NOT NULL,
            finished  REAL,
            cpu_s     REAL    NOT NULL DEFAULT 0,
            usd_nanos INTEGER NOT NULL DEFAULT 0,
            data      TEXT    NOT NULL DEFAULT '{}',  -- JSON: what it read and wrote
            scores    TEXT    NOT NULL DEFAULT '{}',  -- JSON: what it measured
            decision  TEXT    NOT NULL DEFAULT '',
            why       TEXT    NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, step)
        );
        """,
    ),
]


def migrate(conn: Connection, migrations: Sequence[tuple[str, str]] = MIGRATIONS) -> list[str]:
    """Apply what has not been applied (of `migrations`, default thrifty's); return their names.

    Each migration runs in an exclusive transaction that first re-reads whether it is applied:
    two processes starting on a fresh database (a gateway and `thrifty keys create`) cannot both
    apply it. The bookkeeping table is made under the same lock, for the same reason.
    """
    with conn.transaction("exclusive"):
        conn.ddl("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    applied = []
    for name, sql in migrations:
        with conn.transaction("exclusive"):
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                continue
            for statement in _statements(sql):
                conn.ddl(statement)
            conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (triggers' inner semicolons included).

    sqlite3 is only the parser here, whatever the database: the scripts are written for it.
    """
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]}")
    return statements
