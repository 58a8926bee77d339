"""Start real `thrifty serve` processes on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
THRIFTY = [sys.executable, "-m", "thrifty.cli"]


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
        if config is not None:
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
        db = self.home / "thrifty.db"
        if not db.exists():
            return []
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        try:
            query = f"SELECT * FROM requests WHERE {where} ORDER BY ts"
            return [dict(r) for r in conn.execute(query, params)]
        finally:
            conn.close()

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
