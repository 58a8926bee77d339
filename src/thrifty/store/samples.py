"""Captured training samples: the `samples` table, its batching writer, and its reader.

Only `thrifty.gateway.capture` writes here, and only for tenants that opted in (see
`distill.capture_tenants`); `thrifty distill collect --from-log` reads it back. ``INSERT OR
IGNORE``, as in the request log: a batch retried after a connection lost at COMMIT may already
be in, and the request id keeps each sample once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.store.batching import BatchWriter
from thrifty.store.db import Connection, MissingTable, NoDatabase, connect

COLUMNS = (
    "id", "ts", "tenant", "route", "upstream_model", "messages", "answer", "pii", "masked",
    "reasoning",
)  # fmt: skip
_INSERT = (
    f"INSERT OR IGNORE INTO samples ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One captured request: what the cloud was sent and what it answered."""

    id: str
    ts: float
    tenant: str
    route: str
    upstream_model: str | None
    messages: list[dict[str, Any]]
    answer: str
    pii: frozenset[str] = frozenset()
    masked: bool = False
    reasoning: str | None = None  # a thinking model's reasoning before the answer, kept apart

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.ts,
            self.tenant,
            self.route,
            self.upstream_model,
            json.dumps(self.messages, ensure_ascii=False),
            self.answer,
            ",".join(sorted(self.pii)),
            int(self.masked),
            self.reasoning,
        )


class SampleLog(BatchWriter[tuple[Any, ...]]):
    name = "sample-log"

    def append(self, sample: Sample) -> None:
        self.add(sample.row())

    def write(self, conn: Connection, batch: Sequence[tuple[Any, ...]]) -> None:
        with conn.transaction():
            conn.executemany(_INSERT, batch)


def read_samples(
    url: str,
    *,
    since: float | None = None,
    tenants: Sequence[str] = (),
    routes: Sequence[str] = (),
) -> Iterator[Sample]:
    """Captured samples, oldest first. Rows with personal data left unmasked are never returned
    (the capture does not store them; this guards a database written some other way)."""
    where, params = ["NOT (pii <> '' AND masked = 0)"], list[Any]()
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if tenants:
        where.append(f"tenant IN ({', '.join('?' * len(tenants))})")
        params.extend(tenants)
    if routes:
        where.append(f"route IN ({', '.join('?' * len(routes))})")
        params.extend(routes)
    query = f"SELECT {', '.join(COLUMNS)} FROM samples WHERE {' AND '.join(where)} ORDER BY ts, id"
    try:
        conn = connect(url, create=False)
    except NoDatabase:
        return
    try:
        try:
            rows = conn.execute(query, params)
        except MissingTable:  # a log from before capture existed
            return
        for row in rows:
            yield Sample(
                id=row["id"],
                ts=row["ts"],
                tenant=row["tenant"],
                route=row["route"],
                upstream_model=row["upstream_model"],
                messages=json.loads(row["messages"]),
                answer=row["answer"],
                pii=frozenset(k for k in row["pii"].split(",") if k),
                masked=bool(row["masked"]),
                reasoning=row["reasoning"],
            )
    finally:
        conn.close()
