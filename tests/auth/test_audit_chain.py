"""The audit log's hash chain: `thrifty audit verify` names the first edited, deleted or
inserted row; `thrifty audit tail` shows the newest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from support import database_url, free_port, query
from thrifty.cli import main
from thrifty.context import RequestContext
from thrifty.store.audit import (
    GENESIS,
    AuditEvent,
    AuditLog,
    append,
    row_hash,
    verify,
)
from thrifty.store.db import Connection, IntegrityError, connect
from thrifty.store.keys import KeySpec, KeyStore
from thrifty.store.migrations import migrate

ROWS = 6


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path))
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./thrifty.yaml from elsewhere
    return tmp_path


@pytest.fixture()
def db(home: Path) -> Iterator[Connection]:
    """A database whose audit log holds ROWS rows: requests and a key change."""
    conn = connect(database_url(home))
    migrate(conn)
    with conn.transaction("exclusive"):
        append(conn, [_request(i) for i in range(1, ROWS)])
    with KeyStore(database_url(home)) as store:
        store.create(KeySpec("acme", "user"), "cli:test")
    yield conn
    conn.close()


def _request(i: int) -> AuditEvent:
    return AuditEvent(
        ts=1_700_000_000.0 + i,
        action="request",
        actor="key_0123456789abcdef",
        tenant="acme",
        request_id=f"req-{i}",
        endpoint="chat",
        model="local",
        route="local",
        status=200,
        prompt_tokens=10 * i,
        completion_tokens=i,
        cost_nanos=1234 * i,
    )


def audit(*args: str) -> Result:
    return CliRunner().invoke(main, ["audit", *args])


def tamper(conn: Connection, sql: str, *params: object) -> None:
    """What someone with write access does: get the triggers out of the way, then write."""
    table = "" if conn.dialect.name == "sqlite" else " ON audit_log"
    conn.execute(f"DROP TRIGGER IF EXISTS audit_log_no_update{table}")
    conn.execute(f"DROP TRIGGER IF EXISTS audit_log_no_delete{table}")
    conn.execute(sql, params)


def test_an_intact_chain_verifies(db: Connection) -> None:
    result = audit("verify")
    assert result.exit_code == 0, result.output
    head = db.execute("SELECT hash FROM audit_log ORDER BY seq DESC").fetchone()[0]
    assert f"ok: {ROWS} rows verified; head {head}" in result.output
    first = db.execute("SELECT prev_hash FROM audit_log WHERE seq = 1").fetchone()[0]
    assert first == GENESIS


def test_the_table_refuses_updates_and_deletes(db: Connection) -> None:
    with pytest.raises(IntegrityError, match="append-only"):
        db.execute("UPDATE audit_log SET status = 500 WHERE seq = 2")
    with pytest.raises(IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log WHERE seq = 2")


def test_an_edited_row_is_named(db: Connection) -> None:
    tamper(db, "UPDATE audit_log SET cost_nanos = 0 WHERE seq = 3")
    result = audit("verify")
    assert result.exit_code == 1
    assert "audit log broken at row 3:" in result.output and "edited" in result.output


def test_an_edited_row_with_a_recomputed_hash_breaks_the_next_link(
    db: Connection,
) -> None:
    tamper(db, "UPDATE audit_log SET tenant = 'someone-else' WHERE seq = 3")
    row = dict(db.execute("SELECT * FROM audit_log WHERE seq = 3").fetchone())
    tamper(db, "UPDATE audit_log SET hash = ? WHERE seq = 3", row_hash(row))
    result = audit("verify")
    assert result.exit_code == 1
    assert "audit log broken at row 4:" in result.output and "link" in result.output


def test_a_deleted_row_is_named(db: Connection) -> None:
    tamper(db, "DELETE FROM audit_log WHERE seq = 3")
    result = audit("verify")
    assert result.exit_code == 1
    assert "audit log broken at row 4: row 3 before it is missing (deleted)" in result.output


def test_a_deleted_first_row_is_named(db: Connection) -> None:
    tamper(db, "DELETE FROM audit_log WHERE seq = 1")
    result = audit("verify")
    assert result.exit_code == 1 and "row 1 before it is missing" in result.output


def test_an_inserted_row_is_named(db: Connection) -> None:
    fake = {
        "seq": ROWS + 1,
        "ts": 1_800_000_000.0,
        "action": "key.revoke",
        "actor": "cli:mallory",
        "tenant": "acme",
        "request_id": None,
        "endpoint": None,
        "model": None,
        "route": None,
        "status": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "cost_nanos": None,
        "detail": "{}",
        "prev_hash": "f" * 64,
    }
    fake["hash"] = row_hash(fake)
    columns = ", ".join(fake)
    db.execute(
        f"INSERT INTO audit_log ({columns}) VALUES ({', '.join('?' * len(fake))})",
        tuple(fake.values()),
    )
    result = audit("verify")
    assert result.exit_code == 1
    assert f"audit log broken at row {ROWS + 1}:" in result.output
    assert "inserted" in result.output


def test_a_row_slipped_in_before_the_first_is_named(db: Connection) -> None:
    first = dict(db.execute("SELECT * FROM audit_log WHERE seq = 1").fetchone())
    forged = {**first, "seq": 0, "request_id": "req-forged"}
    forged["hash"] = row_hash(forged)
    db.execute(
        f"INSERT INTO audit_log ({', '.join(forged)}) VALUES ({', '.join('?' * len(forged))})",
        tuple(forged.values()),
    )
    result = audit("verify")
    assert result.exit_code == 1
    assert "audit log broken at row 0: out of sequence (expected 1): inserted" in result.output


def test_tail_shows_the_newest_rows(db: Connection) -> None:
    result = audit("tail", "-n", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"#{ROWS - 1}") and "request" in lines[0]
    assert "status=200" in lines[0]
    assert lines[1].startswith(f"#{ROWS}") and "key.create" in lines[1] and "cli:test" in lines[1]
    as_json = audit("tail", "-n", "1", "--json")
    assert '"action":"key.create"' in as_json.output and '"hash":' in as_json.output


def test_verify_without_a_database_says_so(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRIFTY_DATABASE_URL", f"sqlite:///{home / 'none.db'}")
    result = audit("verify")
    assert result.exit_code == 1 and "no database" in result.output
    assert not (home / "none.db").exists()


def test_verify_against_an_unreachable_server_keeps_the_password_out(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://thrifty:hunter2@127.0.0.1:{free_port()}/thrifty"
    monkeypatch.setenv("THRIFTY_DATABASE_URL", url)
    result = audit("verify")
    assert result.exit_code == 1 and "hunter2" not in result.output
    assert "postgresql://thrifty:***@127.0.0.1" in result.output


def test_the_writer_and_another_process_extend_one_chain(home: Path) -> None:
    """The gateway's writer thread and the CLI (another connection) append concurrently."""
    url = database_url(home)
    writer = AuditLog(url, flush_interval_s=0.01, batch_size=7)
    writer.open()

    def cli() -> None:
        with KeyStore(url) as store:
            for i in range(20):
                store.create(KeySpec(f"t{i}"), "cli:test")

    other = threading.Thread(target=cli)
    other.start()
    for i in range(200):
        ctx = RequestContext("chat", {}, "local", False, tenant="acme", key_id="key_x")
        ctx.status = 200 if i % 3 else 429
        writer.record(ctx)
    other.join()
    assert writer.flush()
    writer.close()
    with connect(url) as conn:
        verdict = verify(conn)
    assert verdict.ok and verdict.rows == 220
    statuses = query(
        url, "SELECT count(*) AS n FROM audit_log WHERE action = 'request' AND status = 429"
    )
    assert statuses == [{"n": 67}]
