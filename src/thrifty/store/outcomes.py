"""Labelled outcomes: how good one target's answer to one request was, and what it cost.

One table (migration ``0018_outcomes``) gathers every label the router can learn from:

- ``eval``: `thrifty route eval` ran a suite item on each candidate target and scored both;
- ``shadow``: the gateway answered a sampled request a second time, on the other target, and a
  judge (or the request's reference) said whether the cheaper answer was good enough;
- ``feedback``: a client's ``POST /v1/feedback`` on a routed request (thumbs, conversion);
- ``ab``: the same, on a request an A/B experiment assigned to a variant.

A row keeps the request's fingerprint (a hash of its task key and question), the question's
text masked of personal data (the learned scorer embeds it at training time; NULL when the
gateway no longer knows it), and the cheap features as JSON. ``(source, ref, target)`` is
unique, so a resumed eval or a replayed feedback adds nothing twice (``INSERT OR IGNORE``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from thrifty.store.db import Connection, MissingTable, NoDatabase, connect

SOURCES = ("eval", "shadow", "feedback", "ab")
COLUMNS = (
    "ts", "source", "ref", "request_id", "tenant", "fingerprint", "task", "text", "features",
    "target", "score", "ok", "cost_nanos", "detail",
)  # fmt: skip
_INSERT = (
    f"INSERT OR IGNORE INTO outcomes ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(COLUMNS))})"
)


def task_key(system: str) -> str:
    """The system prompt as a short key: requests with one system prompt are one task."""
    return hashlib.sha256(system.encode()).hexdigest()[:16] if system else ""


def fingerprint(task: str, text: str) -> str:
    return hashlib.sha256(f"{task}\x00{text}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    source: str
    target: str
    fingerprint: str
    ok: bool | None
    score: float | None = None
    cost_nanos: int | None = None
    text: str | None = None
    task: str = ""
    features: dict[str, float] = field(default_factory=dict)
    ref: str | None = None
    request_id: str | None = None
    tenant: str = "default"
    detail: str = ""
    ts: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"outcome source must be one of {', '.join(SOURCES)}")

    def row(self) -> tuple[Any, ...]:
        return (
            self.ts,
            self.source,
            self.ref,
            self.request_id,
            self.tenant,
            self.fingerprint,
            self.task,
            self.text,
            json.dumps(self.features, sort_keys=True),
            self.target,
            self.score,
            None if self.ok is None else int(self.ok),
            self.cost_nanos,
            self.detail,
        )


def add_outcomes(conn: Connection, outcomes: Iterable[Outcome]) -> None:
    rows = [o.row() for o in outcomes]
    if rows:
        with conn.transaction():
            conn.executemany(_INSERT, rows)


def read_outcomes(
    conn: Connection, *, since: float | None = None, sources: Iterable[str] | None = None
) -> Iterator[Outcome]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM outcomes WHERE ts >= ?"
    params: list[Any] = [since or 0.0]
    if sources is not None:
        wanted = list(sources)
        sql += f" AND source IN ({', '.join('?' * len(wanted))})"
        params += wanted
    for row in conn.execute(sql + " ORDER BY id", params).fetchall():
        yield Outcome(
            ts=row[0],
            source=row[1],
            ref=row[2],
            request_id=row[3],
            tenant=row[4],
            fingerprint=row[5],
            task=row[6],
            text=row[7],
            features=json.loads(row[8] or "{}"),
            target=row[9],
            score=row[10],
            ok=None if row[11] is None else bool(row[11]),
            cost_nanos=row[12],
            detail=row[13],
        )


def load_outcomes(url: str, **filters: Any) -> list[Outcome]:
    """Every outcome in the database at ``url``; none when it has no table (or no file) yet."""
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        return []
    try:
        return list(read_outcomes(conn, **filters))
    except MissingTable:
        return []
    finally:
        conn.close()


def count_by(conn: Connection) -> list[tuple[str, str, int, int]]:
    """(source, target, outcomes, of them ok) for `thrifty route outcomes`."""
    rows = conn.execute(
        "SELECT source, target, COUNT(*), SUM(CASE WHEN ok = 1 THEN 1 ELSE 0 END) "
        "FROM outcomes GROUP BY source, target ORDER BY source, target"
    ).fetchall()
    return [(r[0], r[1], int(r[2]), int(r[3] or 0)) for r in rows]


def feedback_label(
    thumbs: bool | None, converted: bool | None, score: float | None
) -> tuple[bool | None, float | None]:
    """A feedback's verdict: thumbs first, then conversion; a bare score stays unlabelled.

    A score's scale is the client's own (1-5, 0-10, …), so it is kept but not turned into a
    pass or fail here.
    """
    if thumbs is not None:
        return thumbs, score if score is not None else float(thumbs)
    if converted is not None:
        return converted, score if score is not None else float(converted)
    return None, score


def request_facts(conn: Connection, request_id: str, tenant: str) -> dict[str, Any] | None:
    """The logged route, cost and variant of a request of ``tenant``, or None."""
    row = conn.execute(
        "SELECT route, cost_nanos, variant, model FROM requests WHERE id = ? AND tenant = ?",
        (request_id, tenant),
    ).fetchone()
    if row is None:
        return None
    return {"route": row[0], "cost_nanos": row[1], "variant": row[2], "model": row[3]}
