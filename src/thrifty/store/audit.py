"""The audit log: append-only, hash-chained rows for admin actions and every request's metadata.

A row holds who acted, on what, and what came of it: request id, time, key id, tenant, model,
route, status, tokens, cost, or for an admin action what changed. Never a secret, never a prompt.

Each row carries `prev_hash` (the previous row's `hash`; 64 zeros for the first) and `hash`, the
sha256 of its canonical form: every column but `hash` (so `seq` and `prev_hash` too) as JSON with
sorted keys and no whitespace. Editing a row breaks its own hash; deleting a row leaves a gap in
`seq` and breaks the next row's link; inserting one breaks the sequence or a link. `verify` walks
the chain and names the first bad row. Triggers refuse UPDATE and DELETE, so accidents fail
loudly; the chain catches the deliberate edits made around them.

A plain hash chain can be recomputed by whoever can write the database, and losing the newest
rows leaves no trace in it: keep the head that `thrifty audit verify` prints somewhere else
(a ticket, a log shipper) and compare it later.

Writers: `AuditLog.record` is one of the meter's records: it queues one event per request; a writer
thread appends them in batches, off the hot path. Admin actions are appended by `append` inside
the very transaction that makes the change, so no key change goes unaudited. Every append runs
in an exclusive transaction (`Connection.transaction("exclusive")`: BEGIN IMMEDIATE on SQLite,
an advisory lock on PostgreSQL) and reads the head inside it: writers in several processes (a
gateway and the CLI) extend one chain.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from thrifty.context import RequestContext
from thrifty.store.batching import BatchWriter
from thrifty.store.db import Connection, storable_text

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
EVENT_FIELDS = (
    "ts", "action", "actor", "tenant", "request_id", "endpoint", "model", "route", "status",
    "prompt_tokens", "completion_tokens", "cost_nanos", "detail",
)  # fmt: skip
_CHAINED = ("seq", *EVENT_FIELDS, "prev_hash")
_INTEGERS = ("status", "prompt_tokens", "completion_tokens", "cost_nanos")
_INSERT = "INSERT INTO audit_log ({}, hash) VALUES ({})".format(
    ", ".join(_CHAINED), ", ".join("?" * (len(_CHAINED) + 1))
)
_STOP = object()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, before it takes its place in the chain."""

    ts: float
    action: str  # request | key.create | key.revoke | admin.denied
    actor: str | None = None  # key id; cli:<user> for the CLI
    tenant: str | None = None
    request_id: str | None = None
    endpoint: str | None = None
    model: str | None = None
    route: str | None = None
    status: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_nanos: int | None = None
    detail: str = "{}"  # JSON text, hashed as stored


def request_event(ctx: RequestContext) -> AuditEvent:
    usage = ctx.usage or {}
    return AuditEvent(
        ts=ctx.received_at,
        action="request",
        actor=ctx.key_id,
        tenant=ctx.tenant,
        request_id=ctx.id,
        endpoint=ctx.endpoint,
        model=ctx.model,
        route=ctx.route,
        status=ctx.status,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cost_nanos=ctx.cost_nanos,
    )


def detail(**fields: Any) -> str:
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()


def row_hash(row: dict[str, Any]) -> str:
    """sha256 over the canonical form of a row: the chained columns, JSON, sorted keys."""
    canonical = {name: row[name] for name in _CHAINED}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def append(conn: Connection, events: Sequence[AuditEvent]) -> str:
    """Chain `events` onto the log; call inside `conn.transaction("exclusive")` (so the head read
    here stays the head). Returns the new head hash."""
    head = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0], head[1]) if head is not None else (0, GENESIS)
    rows = []
    for event in events:
        seq += 1
        row = {"seq": seq, **asdict(event), "prev_hash": prev}
        # hash what the database will hand back: REAL and INTEGER columns coerce what they store,
        # and no backend keeps a NUL in text
        row["ts"] = float(row["ts"])
        for name in _INTEGERS:
            if row[name] is not None:
                row[name] = int(row[name])
        for name, value in row.items():
            if isinstance(value, str):
                row[name] = storable_text(value)
        prev = row_hash(row)
        rows.append((*(row[name] for name in _CHAINED), prev))
    conn.executemany(_INSERT, rows)
    return prev


@dataclass(frozen=True, slots=True)
class Verdict:
    rows: int  # rows checked (all of them when ok)
    head: str  # the last good row's hash
    bad_seq: int | None = None  # the first bad row
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_seq is None


def verify(conn: Connection) -> Verdict:
    """Walk the chain from the first row; stop at the first row that does not hold."""
    expected_seq, prev, count = 1, GENESIS, 0
    cursor = conn.execute(f"SELECT {', '.join(_CHAINED)}, hash FROM audit_log ORDER BY seq")
    for found in cursor:
        row = dict(found)
        seq = row["seq"]
        problem = None
        if seq > expected_seq:
            missing = str(expected_seq) if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
            problem = f"row {missing} before it is missing (deleted)"
        elif seq < expected_seq:
            problem = f"out of sequence (expected {expected_seq}): inserted"
        elif row["prev_hash"] != prev:
            problem = "does not link to the row before it: a row was inserted or rewritten"
        elif row_hash(row) != row["hash"]:
            problem = "its contents do not match its hash: edited"
        if problem is not None:
            return Verdict(count, prev, seq, problem)
        prev, expected_seq, count = row["hash"], seq + 1, count + 1
    return Verdict(count, prev)


def tail(conn: Connection, n: int) -> list[dict[str, Any]]:
    cursor = conn.execute("SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?", (n,))
    return [dict(r) for r in reversed(cursor.fetchall())]


class AuditLog(BatchWriter[AuditEvent]):
    """The in-process writer: `record` (a meter record) and `add` queue; a thread appends batches.

    A batch is retried after a lost connection. Were the connection lost while its COMMIT was
    already done, the retry would chain those events a second time (with new `seq`s; the chain
    still verifies): a rare double entry, where the request log keeps each row once by its id.
    """

    name = "audit-log"

    def record(self, ctx: RequestContext) -> None:
        """Finisher: one audit row per request, queued (the hot path pays for a small object)."""
        self.add(request_event(ctx))

    def write(self, conn: Connection, batch: Sequence[AuditEvent]) -> None:
        with conn.transaction("exclusive"):
            append(conn, batch)
