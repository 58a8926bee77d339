"""The request log's write-ahead spool: rows of a killed process are replayed, once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from support import database_url, query
from thrifty.store.request_log import RequestLog
from thrifty.store.spool import Spool

SRC = str(Path(__file__).resolve().parents[2] / "src")


def owner_process(directory: Path, rows: int, then: str) -> subprocess.Popen[bytes]:
    """A process that spools `rows` rows, says so on stdout, then dies (`kill`) or waits."""
    code = textwrap.dedent(
        f"""
        import os, signal, sys, time
        sys.path.insert(0, {SRC!r})
        from pathlib import Path
        from thrifty.store.spool import Spool
        spool = Spool(Path({str(directory)!r}))
        spool.open()
        for i in range({rows}):
            with spool.lock:
                spool.append(Spool.encode((f"req-{{i}}", 1.5 * i, "租户", None, i)))
            if i == {rows} // 2:
                with spool.lock:
                    spool.seal()
        print("spooled", flush=True)
        if {then!r} == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"spooled\n"
    return proc


def test_a_killed_owners_rows_are_replayed_then_removed(tmp_path: Path) -> None:
    proc = owner_process(tmp_path, 10, then="kill")
    assert proc.wait(timeout=10) == -signal.SIGKILL

    heir = Spool(tmp_path)
    rows = heir.open()
    assert rows == [(f"req-{i}", 1.5 * i, "租户", None, i) for i in range(10)]
    heir.committed()  # the heir's writer landed them
    assert not [p for p in tmp_path.iterdir() if heir.owner not in p.name]

    assert Spool(tmp_path).open() == []  # nothing is replayed twice
    heir.close(clean=True)


def test_a_live_owners_spool_is_left_alone(tmp_path: Path) -> None:
    proc = owner_process(tmp_path, 4, then="wait")
    try:
        assert Spool(tmp_path).open() == []
    finally:
        proc.kill()
        proc.wait()
    assert len(Spool(tmp_path).open()) == 4  # and adopted once its owner is gone


def test_a_write_cut_short_loses_only_its_own_line(tmp_path: Path) -> None:
    proc = owner_process(tmp_path, 3, then="kill")
    proc.wait(timeout=10)
    [last] = sorted(tmp_path.glob("*.1.jsonl"))
    with open(last, "ab") as f:
        f.write(b'["req-torn", 1.0, "t"')  # no closing bracket, no newline
    assert [row[0] for row in Spool(tmp_path).open()] == ["req-0", "req-1", "req-2"]


def test_a_clean_close_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    with spool.lock:
        spool.append(Spool.encode(("a", 1)))
        spool.seal()
    spool.committed()
    spool.close(clean=True)
    assert list(tmp_path.iterdir()) == []


def test_the_request_log_replays_what_a_killed_process_acknowledged(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    spool = tmp_path / "spool"
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {SRC!r})
        from thrifty.context import RequestContext
        from thrifty.store.request_log import RequestLog
        log = RequestLog({url!r}, spool=Path({str(spool)!r}), flush_interval_s=3600)
        log.open()
        for i in range(5):
            ctx = RequestContext("chat", {{}}, "local", False, id=f"req-{{i}}", tenant="租户")
            ctx.status = 200
            log.append(ctx)  # what a finisher does before the answer's last byte leaves
        print("answered", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == b"answered\n", proc.stderr
    assert query(url, "SELECT id FROM requests") == []  # the batch never reached the database

    heir = RequestLog(url, spool=spool, flush_interval_s=0.01)
    heir.open()
    assert heir.flush()
    rows = query(url, "SELECT id, tenant, status FROM requests ORDER BY id")
    assert rows == [{"id": f"req-{i}", "tenant": "租户", "status": 200} for i in range(5)]
    heir.close()
    assert list(spool.iterdir()) == []
