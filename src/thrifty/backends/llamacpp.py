"""The local engine: llama.cpp's own `llama-server`, started and supervised as a subprocess.

Why a subprocess and not llama-cpp-python in-process: llama-server batches requests continuously
across its slots and keeps a prefix cache, and it runs outside the gateway's GIL. Measured on a
2-core box, it serves ~137 tok/s in aggregate with 4 clients, where llama-cpp-python's server,
one request at a time behind a lock, fell to 35-40 tok/s. The gateway talks to it over loopback
HTTP with the same client as any upstream, and adds what llama-server lacks: admission control
(a bounded queue with a clean 503), readiness, restart on crash, and AMX detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from thrifty.backends.base import Endpoint, Reply, StreamStats
from thrifty.backends.models import BUNDLED, resolve_model
from thrifty.backends.openai_compat import OpenAICompatBackend
from thrifty.config import LocalSettings
from thrifty.errors import Overloaded, UpstreamUnavailable

logger = logging.getLogger(__name__)

_INSTALL_HINT = (
    "llama-server not found: run `make engine` (builds it once from the llama.cpp source that "
    "ships with llama-cpp-python), or set local.llama_server / $THRIFTY_LLAMA_SERVER"
)


def find_llama_server(configured: str | None = None) -> str:
    candidates = [
        configured,
        os.environ.get("THRIFTY_LLAMA_SERVER"),
        str(Path(sys.executable).parent / "llama-server"),
        shutil.which("llama-server"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(_INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and "amx_tile" in line for line in f)
    except OSError:
        return False


class LlamaServerBackend:
    """One llama-server process serving one GGUF model."""

    kind = "local"

    def __init__(self, name: str, settings: LocalSettings, home: Path) -> None:
        self.name = name
        self.settings = settings
        self.home = home
        self.parallel = settings.parallel
        self.capacity = settings.parallel + settings.max_queue
        self.in_flight = 0
        self.port = settings.port or 0
        self.log_path = home / "logs" / f"llama-server-{name}.log"
        bundled = BUNDLED.get(settings.model)
        self.chat_template = settings.chat_template or (bundled and bundled.chat_template)
        self.stop = (
            settings.stop if settings.stop is not None else list(bundled.stop if bundled else ())
        )
        self._proc: asyncio.subprocess.Process | None = None
        self._client: OpenAICompatBackend | None = None
        self._ready = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._no_repack = False
        self.error: str | None = None  # why the engine is not ready, for /readyz

    # -- lifecycle -------------------------------------------------------------------------------

    def command(self, model_path: Path) -> list[str]:
        s = self.settings
        cmd = [
            find_llama_server(s.llama_server),
            "--model", str(model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--alias", self.name,
            "--threads", str(s.threads or os.cpu_count() or 1),
            "--parallel", str(s.parallel),
            "--ctx-size", str(s.ctx_size * s.parallel),
            "--metrics",
            "--no-webui",
            "--jinja",  # the model's own chat template, as its authors wrote it
        ]  # fmt: skip
        if self.chat_template:
            cmd += ["--chat-template", self.chat_template]
        if self._no_repack:
            cmd.append("--no-repack")
        return [*cmd, *s.extra_args]

    @property
    def url(self) -> str:
        """The engine's base URL (no /v1): the configured one, or the process this backend runs."""
        if self.settings.url:
            return self.settings.url.rstrip("/").removesuffix("/v1")
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self.settings.url:  # someone else runs the engine: only watch its health
            await self._open_client()
            self._supervisor = asyncio.create_task(self._watch())
            return
        model_path = resolve_model(self.settings.model, self.home, self.settings.models)
        self.port = self.settings.port or free_port()
        await self._open_client()
        command = self.command(model_path)  # raises with an install hint before anything starts
        self._supervisor = asyncio.create_task(self._supervise(model_path, command))

    async def _open_client(self) -> None:
        self._client = OpenAICompatBackend(
            f"local engine {self.name}",
            f"{self.url}/v1",
            connect_timeout_s=5,
            timeout_s=self.settings.request_timeout_s,
            # llama-server says keep-alive but closes the connection after a streamed answer; a
            # pooled connection could be dead when reused (a 502 for ~2% of requests). A fresh
            # loopback connection per request costs ~0.1 ms next to a model's milliseconds.
            reuse_connections=False,
        )
        await self._client.start()

    async def _watch(self) -> None:
        """An engine run elsewhere: ready while its /health answers 200 (checked every second)."""
        async with aiohttp.ClientSession() as session:
            while not self._closing:
                try:
                    async with session.get(
                        f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=2)
                    ) as r:
                        healthy = r.status == 200
                        self.error = None if healthy else f"engine at {self.url}: HTTP {r.status}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    healthy = False
                    self.error = f"engine at {self.url} unreachable: {exc.__class__.__name__}"
                if healthy:
                    self._ready.set()
                else:
                    self._ready.clear()
                await asyncio.sleep(1.0 if healthy else 0.2)

    async def _spawn(self, command: list[str]) -> asyncio.subprocess.Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            return await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it in order
            )

    async def _supervise(self, model_path: Path, command: list[str]) -> None:
        """Start llama-server, wait until it answers, restart it with backoff if it dies."""
        backoff = 1.0
        while not self._closing:
            started = time.monotonic()
            logger.info("starting llama-server for %s on 127.0.0.1:%d", self.name, self.port)
            self._proc = await self._spawn(command)
            ready = await self._wait_ready(self._proc)
            if ready:
                logger.info("local model %s ready in %.1fs", self.name, time.monotonic() - started)
                self.error = None
                self._ready.set()
                backoff = 1.0
            code = await self._proc.wait()
            self._ready.clear()
            if self._closing:
                return
            died_of = -code if code < 0 else None
            if died_of in (signal.SIGSEGV, signal.SIGILL) and not self._no_repack and cpu_has_amx():
                # Some VMs advertise AMX but fault on it; repacked weights use it. Go without.
                logger.warning("llama-server crashed on an AMX CPU; restarting with --no-repack")
                self._no_repack = True
                command = self.command(model_path)
                continue
            self.error = f"llama-server exited with code {code}; see {self.log_path}"
            logger.error("%s\n%s", self.error, self._log_tail())
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> bool:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        url = f"http://127.0.0.1:{self.port}/health"
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and proc.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return True
                await asyncio.sleep(0.1)
        if proc.returncode is None:
            self.error = f"llama-server not ready after {self.settings.startup_timeout_s:.0f}s"
            logger.error("%s; stopping it", self.error)
            proc.kill()
        return False

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def close(self) -> None:
        self._closing = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._client is not None:
            await self._client.close()

    # -- serving ---------------------------------------------------------------------------------

    def ready(self) -> bool:
        return self._ready.is_set()

    def load(self) -> int:
        return max(0, self.in_flight - self.parallel)

    def saturated(self) -> bool:
        return self.in_flight >= self.parallel

    def _admit(self) -> OpenAICompatBackend:
        if not self._ready.is_set() or self._client is None:
            raise UpstreamUnavailable(
                f"local model {self.name} is not ready yet", headers={"retry-after": "2"}
            )
        if self.in_flight >= self.capacity:
            raise Overloaded(
                f"local model {self.name} is at capacity ({self.in_flight} requests); "
                "retry shortly",
                headers={"retry-after": "1"},
            )
        return self._client

    def _prepare(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """The model's defaults: a system prompt and stop sequences, where the client set none."""
        if endpoint != "chat":
            return body
        if self.stop and body.get("stop") is None:
            body = {**body, "stop": self.stop}
        system = self.settings.system_prompt
        messages = body.get("messages") or []
        if not system or any(m.get("role") in ("system", "developer") for m in messages):
            return body
        return {**body, "messages": [{"role": "system", "content": system}, *messages]}

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        client = self._admit()
        body = self._prepare(endpoint, body)
        self.in_flight += 1
        try:
            return await client.complete(endpoint, body)
        finally:
            self.in_flight -= 1

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        client = self._admit()
        body = self._prepare(endpoint, body)
        self.in_flight += 1
        chunks = client.stream(endpoint, body, stats)
        try:
            async for batch in chunks:
                yield batch
        finally:
            self.in_flight -= 1
            await chunks.aclose()  # a client that left stops the generation now
