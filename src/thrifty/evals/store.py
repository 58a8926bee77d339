"""Eval runs and their per-item results, in SQLite at ``$THRIFTY_HOME/evals.db``.

A database of its own rather than tables in the gateway's: eval results are a client-side
artifact (the endpoint under test may be any server, or a gateway on PostgreSQL), and a long
eval writing per item must not contend with the gateway's batched request-log writer.
Each item is committed as soon as it is scored: an interrupted run keeps everything it finished,
and re-running the same run id skips those items.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.store import db as store_db
from thrifty.store.migrations import migrate

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_eval_runs",
        """
        CREATE TABLE runs (
            id       TEXT PRIMARY KEY,
            suite    TEXT NOT NULL,     -- built-in name, or a custom suite's name
            source   TEXT NOT NULL,     -- the suite's name or JSONL path, as given to `run`
            model    TEXT NOT NULL,
            base_url TEXT NOT NULL,
            rated    INTEGER NOT NULL,  -- 1: scores 1-10 from a judge; 0: pass/fail
            planned  INTEGER NOT NULL,  -- items the latest invocation meant to run
            params   TEXT NOT NULL,     -- JSON: max_tokens, judge_model, ...
            created  REAL NOT NULL,
            updated  REAL NOT NULL,
            status   TEXT NOT NULL      -- running | done | interrupted
        );
        CREATE TABLE items (
            run_id            TEXT NOT NULL REFERENCES runs (id),
            item_id           TEXT NOT NULL,
            position          INTEGER NOT NULL,  -- the item's place in the suite
            answers           TEXT NOT NULL,     -- JSON list: one answer per user turn
            expected          TEXT,              -- JSON
            score             REAL NOT NULL,     -- 0/1 pass/fail, or the 1-10 rating
            passed            INTEGER,           -- NULL for rated items
            detail            TEXT NOT NULL DEFAULT '',
            error             TEXT,              -- the endpoint refused the item (scored 0)
            latency_ms        REAL NOT NULL,     -- the model's calls, summed over turns
            prompt_tokens     INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            route             TEXT,              -- x-thrifty-route, when the endpoint is thrifty
            cost_nanos        INTEGER,           -- x-thrifty-cost-usd in 1e-9 USD; NULL: unknown
            judge_cost_nanos  INTEGER,
            ts                REAL NOT NULL,
            PRIMARY KEY (run_id, item_id)
        );
        CREATE INDEX runs_suite_model ON runs (suite, model, created);
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class Run:
    """A run's row."""

    id: str
    suite: str
    source: str
    model: str
    base_url: str
    rated: bool
    planned: int
    params: dict[str, Any]
    created: float
    updated: float
    status: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One scored item, as stored."""

    item_id: str
    position: int
    answers: list[str]
    expected: Any
    score: float
    passed: bool | None
    detail: str
    error: str | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    route: str | None
    cost_nanos: int | None
    judge_cost_nanos: int | None


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating) the eval database."""
    with store_db.connect(f"sqlite:///{path}") as migrating:  # makes the file and its folder
        migrate(migrating, MIGRATIONS)
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        suite=row["suite"],
        source=row["source"],
        model=row["model"],
        base_url=row["base_url"],
        rated=bool(row["rated"]),
        planned=row["planned"],
        params=json.loads(row["params"]),
        created=row["created"],
        updated=row["updated"],
        status=row["status"],
    )


def get_run(conn: sqlite3.Connection, run_id: str) -> Run | None:
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def start_run(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    suite: str,
    source: str,
    model: str,
    base_url: str,
    rated: bool,
    planned: int,
    params: dict[str, Any],
) -> Run:
    """Create the run, or mark an existing one running again (a resume)."""
    now = time.time()
    with conn:
        conn.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running') "
            "ON CONFLICT (id) DO UPDATE SET planned = excluded.planned, "
            "params = excluded.params, updated = excluded.updated, status = 'running'",
            (
                run_id,
                suite,
                source,
                model,
                base_url,
                int(rated),
                planned,
                json.dumps(params),
                now,
                now,
            ),
        )
    run = get_run(conn, run_id)
    assert run is not None
    return run


def finish_run(conn: sqlite3.Connection, run_id: str, status: str) -> None:
    with conn:
        conn.execute(
            "UPDATE runs SET status = ?, updated = ? WHERE id = ?", (status, time.time(), run_id)
        )


def done_items(conn: sqlite3.Connection, run_id: str) -> set[str]:
    """The ids of the items this run has already scored."""
    rows = conn.execute("SELECT item_id FROM items WHERE run_id = ?", (run_id,))
    return {row[0] for row in rows}


def save_item(conn: sqlite3.Connection, run_id: str, result: ItemResult) -> None:
    """Store one scored item (committed at once)."""
    with conn:
        conn.execute(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                result.item_id,
                result.position,
                json.dumps(result.answers, ensure_ascii=False),
                json.dumps(result.expected, ensure_ascii=False, default=str),
                result.score,
                None if result.passed is None else int(result.passed),
                result.detail,
                result.error,
                result.latency_ms,
                result.prompt_tokens,
                result.completion_tokens,
                result.route,
                result.cost_nanos,
                result.judge_cost_nanos,
                time.time(),
            ),
        )
        conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (time.time(), run_id))


def items(conn: sqlite3.Connection, run_id: str) -> list[ItemResult]:
    """A run's stored items, in suite order."""
    rows = conn.execute("SELECT * FROM items WHERE run_id = ? ORDER BY position", (run_id,))
    return [
        ItemResult(
            item_id=row["item_id"],
            position=row["position"],
            answers=json.loads(row["answers"]),
            expected=json.loads(row["expected"]) if row["expected"] is not None else None,
            score=row["score"],
            passed=None if row["passed"] is None else bool(row["passed"]),
            detail=row["detail"],
            error=row["error"],
            latency_ms=row["latency_ms"],
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            route=row["route"],
            cost_nanos=row["cost_nanos"],
            judge_cost_nanos=row["judge_cost_nanos"],
        )
        for row in rows
    ]


def latest_runs(conn: sqlite3.Connection) -> list[Run]:
    """The most recent run of each suite × model, by suite then model."""
    rows = conn.execute(
        "SELECT * FROM runs r WHERE created = (SELECT MAX(created) FROM runs "
        "WHERE suite = r.suite AND model = r.model) ORDER BY suite, model"
    )
    return [_run(row) for row in rows]
