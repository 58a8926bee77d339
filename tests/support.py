"""Start real `thrifty serve` processes (and Redis, PostgreSQL) on 127.0.0.1 for tests.

The store under test: SQLite files in each home by default; with ``THRIFTY_TEST_DB=postgresql``
a real PostgreSQL server for the session (`PostgresServer`), and a fresh database for every
test (conftest sets ``THRIFTY_DATABASE_URL``) and every server started without a home of the
test's. `database_url` and `query` reach the store either way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
THRIFTY = [sys.executable, "-m", "thrifty.cli"]
POSTGRES_URL_ENV = "THRIFTY_TEST_POSTGRES_URL"  # the session server's admin URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThriftyServer:
    """A `thrifty serve` subprocess with its own home, config and log file."""

    def __init__(
        self,
        *args: str,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        home: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.home = home or Path(tempfile.mkdtemp(prefix="thrifty-test-"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        self.log_path = self.home / "serve.log"
        self.env = {
            **os.environ,
            "THRIFTY_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
            # Several engines share two cores in these tests; llama.cpp's threads spin while they
            # wait, so two engines with a thread per core each slow to a crawl. One thread each.
            "THRIFTY_LOCAL__THREADS": "1",
            **(env or {}),
        }
        self.env.pop("THRIFTY_CONFIG", None)
        self.env.pop("DEEPSEEK_API_KEY", None) if "DEEPSEEK_API_KEY" not in (env or {}) else None
        # a home of the test's shares the test's database (the CLI reads it too); else a new one
        inherited = home is not None and "THRIFTY_DATABASE_URL" in os.environ
        if on_postgres() and "THRIFTY_DATABASE_URL" not in (env or {}) and not inherited:
            self.env["THRIFTY_DATABASE_URL"] = fresh_database()
        self.database_url = self.env.get("THRIFTY_DATABASE_URL") or sqlite_url(self.home)
        if config is not None:
            self.home.mkdir(parents=True, exist_ok=True)
            path = self.home / "thrifty.yaml"
            path.write_text(yaml.safe_dump(config, allow_unicode=True))
            self.env["THRIFTY_CONFIG"] = str(path)
        self.args = [*THRIFTY, "serve", "--port", str(self.port), *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120, ready: bool = True) -> ThriftyServer:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home
            )
        deadline = time.monotonic() + timeout
        path = "/readyz" if ready else "/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"thrifty serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"thrifty serve not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ThriftyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the request log, read the way a report would -------------------------------------------

    def rows(self, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return query(self.database_url, f"SELECT * FROM requests WHERE {where} ORDER BY ts", params)

    def wait_rows(
        self, where: str, params: tuple[Any, ...] = (), timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Rows matching `where`, waiting up to `timeout` for the batched writer to land them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.rows(where, params)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def row(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The log row of one request; waits for the batched writer."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.rows("id = ?", (request_id,))
            if found or time.monotonic() > deadline:
                assert found, f"no request-log row for {request_id}"
                return found[0]
            time.sleep(0.05)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A real redis-server (Debian's package) on a free port of 127.0.0.1; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed: run scripts/ensure-services.sh")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the store under test -------------------------------------------------------------------------


def on_postgres() -> bool:
    """Whether this run tests the store on PostgreSQL (``THRIFTY_TEST_DB=postgresql``)."""
    return os.environ.get("THRIFTY_TEST_DB", "sqlite") == "postgresql"


def sqlite_url(home: Path) -> str:
    return f"sqlite:///{home / 'thrifty.db'}"


def database_url(home: Path) -> str:
    """The database that thrifty with this home uses in this test, as `Settings` resolves it."""
    return os.environ.get("THRIFTY_DATABASE_URL") or sqlite_url(home)


def fresh_database() -> str:
    """A new, empty database on the session's PostgreSQL server; its URL."""
    import psycopg

    admin = os.environ[POSTGRES_URL_ENV]
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{admin.rsplit('/', 1)[0]}/{name}"


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """The rows of `sql` (``?`` placeholders) by name; none while the store has no such table."""
    from thrifty.store.db import MissingTable, NoDatabase, connect

    try:
        conn = connect(url, create=False)
    except NoDatabase:
        return []
    with conn:
        try:
            return [dict(row) for row in conn.execute(sql, params)]
        except MissingTable:
            return []


def dump(url: str) -> str:
    """Every row of every table as text: what anyone who can read the database sees."""
    from thrifty.store.db import connect

    with connect(url, create=False) as conn:
        if conn.dialect.name == "sqlite":
            catalog = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            catalog = "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"
        lines = []
        for (name,) in conn.execute(catalog).fetchall():
            lines.append(f"-- {name}")
            lines.extend(repr(tuple(row)) for row in conn.execute(f'SELECT * FROM "{name}"'))
        return "\n".join(lines)


class PostgresServer:
    """A throwaway PostgreSQL cluster from Debian's binaries, on a free port of 127.0.0.1.

    initdb refuses to run as root, so under root the cluster belongs to the `postgres` user that
    the package creates. Durability is off (fsync, full pages): the tests need the server's
    behaviour, not its crash safety.
    """

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: run scripts/ensure-services.sh")
        self.bin = found[-1].parent
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = Path(tempfile.mkdtemp(prefix="thrifty-pg-"))  # not under a root-only tmp
        if self.user is not None:
            shutil.chown(self.dir, self.user)
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / tool), *args],
            check=True,
            cwd=self.dir,
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self) -> PostgresServer:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        log = str(self.dir / "server.log")
        self._pg("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`pg_ctl stop -m fast`: clients are cut off at once)."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started `PostgresServer`; stopped and removed after."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(server.dir, ignore_errors=True)
