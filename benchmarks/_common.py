"""Helpers shared by the benchmark scripts: the machine header, processes, CPU time, tables.

Benchmarks run thrifty the way users do, as a `thrifty serve` subprocess on 127.0.0.1, and
compare it with a baseline measured in the same run, on the same machine, under the same load.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import httptools
import orjson
import yaml

if TYPE_CHECKING:
    from fakes.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: thrifty, llama-server, llama-bench
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def machine_header(title: str) -> str:
    from thrifty import __version__

    system = f"{platform.system()} {platform.release()}"
    return "\n".join(
        [
            f"# {title}",
            f"machine: {cpu_model()}, {os.cpu_count()} cores, {system}",
            f"python {platform.python_version()}, thrifty {__version__}",
            f"at start: {load_average()}",
        ]
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads, none of its children)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    """Poll `url` until it answers 200; fail early with the log's tail if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {timeout_s:.0f}s:\n{tail(log)}")


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """A server subprocess that logs to a file and is ready when `ready_path` answers 200."""

    def __init__(
        self,
        command: list[str],
        port: int,
        log: Path,
        *,
        ready_path: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout_s: float = 180,
    ) -> None:
        self.command = command
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = self.root + "/v1"
        self.log = log
        self.ready_path = ready_path
        self.env = env
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
            )
        try:
            wait_http(self.root + self.ready_path, self.proc, self.timeout_s, self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def thrifty_serve(
    home: Path, *args: str, config: dict[str, Any] | None = None, timeout_s: float = 180
) -> Server:
    """`thrifty serve` on a free port with its own home (and config file), ready at /readyz."""
    port = free_port()
    env = {**os.environ, "THRIFTY_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("DEEPSEEK_API_KEY", None)  # its presence would add a real cloud upstream
    env.pop("THRIFTY_CONFIG", None)
    if config is not None:
        path = home / "thrifty.yaml"
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        env["THRIFTY_CONFIG"] = str(path)
    command = [sys.executable, "-m", "thrifty.cli", "serve", "--port", str(port), *args]
    return Server(
        command,
        port,
        home / "serve.log",
        ready_path="/readyz",
        env=env,
        cwd=home,
        timeout_s=timeout_s,
    )


def start_fake_upstream() -> FakeUpstream:
    """The fault-injecting fake upstream from the tests, in mode ok."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from fakes.upstream import start_upstream

    return start_upstream()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], labels: int = 1) -> str:
    """A plain-text table: the first `labels` columns left-aligned, the numbers right-aligned."""
    cells = [list(headers), *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if i < labels else v.rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def post_chat(port: int, body: dict[str, Any]) -> bytes:
    """A ready-to-write HTTP/1.1 POST of `body` to /v1/chat/completions on 127.0.0.1:`port`."""
    data = orjson.dumps(body)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time (cheap load client).

    `send` returns the status; `cache` holds the last response's x-thrifty-cache header.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._done: asyncio.Future[int] | None = None
        self.cache = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def on_header(self, name: bytes, value: bytes) -> None:  # httptools callback
        if name.lower() == b"x-thrifty-cache":
            self.cache = value.decode()

    def on_message_complete(self) -> None:  # httptools callback: the whole response is in
        if self._done is not None and not self._done.done():
            self._done.set_result(self._parser.get_status_code())

    def _fail(self, exc: BaseException) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    async def send(self, request: bytes) -> int:
        """Write a request and wait for the whole response; returns its status."""
        assert self._transport is not None
        self.cache = ""
        self._done = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._done

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
