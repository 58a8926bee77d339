"""The batched writers keep every row through a database restart, and count what they drop.

A real PostgreSQL server of the test's own is stopped (`pg_ctl stop -m fast`: every connection
is cut) while rows keep coming, then started again: each row is in the log exactly once. With
a tiny buffer and no server at all, the rows beyond the buffer are dropped and counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from support import PostgresServer, free_port, postgres_server, query
from thrifty.context import RequestContext
from thrifty.store.audit import AuditLog, verify
from thrifty.store.db import connect
from thrifty.store.request_log import RequestLog


@pytest.fixture()
def server() -> Iterator[PostgresServer]:
    with postgres_server() as started:
        yield started


def database(server: PostgresServer, name: str) -> str:
    with connect(server.url) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return f"{server.url.rsplit('/', 1)[0]}/{name}"


def request(i: int) -> RequestContext:
    ctx = RequestContext("chat", {}, "local", False, tenant="acme", key_id="key_x")
    ctx.status = 200
    ctx.id = f"req-{i:05d}"
    return ctx


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_rows_survive_a_database_restart_exactly_once(server: PostgresServer) -> None:
    url = database(server, "restart")
    dropped: list[int] = []
    log = RequestLog(url, batch_size=50, flush_interval_s=0.01, on_drop=dropped.append)
    audit = AuditLog(url, batch_size=50, flush_interval_s=0.01, on_drop=dropped.append)
    log.open()
    audit.open()
    sent = 0
    stop = threading.Event()

    def traffic() -> None:  # the event loop's side: add only, never wait
        nonlocal sent
        while not stop.is_set():
            ctx = request(sent)
            log.append(ctx)
            audit.record(ctx)
            sent += 1
            time.sleep(0.001)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        eventually(lambda: sent > 200, "traffic before the stop")
        server.stop("fast")
        during = sent
        eventually(lambda: sent > during + 300, "traffic while the database is down")
        assert log.buffered > 0 and audit.buffered > 0  # held while it is away
        server.start()
        eventually(lambda: sent > during + 600, "traffic after the restart")
    finally:
        stop.set()
        sender.join()
    assert log.flush(timeout=60) and audit.flush(timeout=60)
    log.close()
    audit.close()
    assert dropped == [] and log.dropped == audit.dropped == 0
    ids = [row["id"] for row in query(url, "SELECT id FROM requests ORDER BY id")]
    assert ids == [f"req-{i:05d}" for i in range(sent)]  # every one, once
    with connect(url) as conn:
        verdict = verify(conn)
        requests = conn.execute("SELECT count(DISTINCT request_id) FROM audit_log").fetchone()[0]
    assert verdict.ok and verdict.rows == sent and requests == sent


def test_past_the_buffer_rows_are_dropped_and_counted() -> None:
    unreachable = f"postgresql://thrifty@127.0.0.1:{free_port()}/thrifty"
    dropped: list[int] = []
    log = RequestLog(
        unreachable,
        flush_interval_s=0.01,
        max_buffered=5,
        close_timeout_s=0.2,
        on_drop=dropped.append,
    )
    log.start()  # not `open`: that migrates, and fails on a database that is away
    for i in range(12):
        log.append(request(i))
    eventually(lambda: log.dropped == 7, "the rows beyond the buffer dropped")
    assert sum(dropped) == 7 and log.buffered == 5  # the five first ones wait
    assert not log.flush(timeout=0.2)  # they cannot be written
    log.close()  # the database never came back: what waited is lost too, and counted
    assert sum(dropped) == log.dropped == 12 and log.buffered == 0
