"""A local inference engine run as a supervised subprocess: llama.cpp's llama-server or vLLM.

Both speak the OpenAI API over loopback, so the gateway calls them with the same client as any
upstream, and adds what the engines lack: admission control (a bounded queue with a clean 503),
readiness, and restart with backoff when the process dies. Subclasses say how to start theirs.
With `local.url` set the engine runs elsewhere (a sidecar, or the one `serve --workers` shares):
then it is only watched, never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from thrifty.backends import reaper
from thrifty.backends.base import Endpoint, Reply, StreamStats
from thrifty.backends.models import BUNDLED, registered_chat_template
from thrifty.backends.openai_compat import OpenAICompatBackend
from thrifty.config import LocalSettings
from thrifty.errors import Overloaded, UpstreamUnavailable

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EngineUnavailable(FileNotFoundError):
    """The engine cannot run on this machine; the message says why and what to do."""


def find_program(name: str, configured: str | None, env: str, hint: str) -> str:
    """The configured path, then $ENV, then next to the Python interpreter, then PATH."""
    candidates = [
        configured,
        os.environ.get(env),
        str(Path(sys.executable).parent / name),
        shutil.which(name),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EngineUnavailable(hint)


class ManagedEngine:
    """One engine process serving one model, supervised; requests admitted up to its capacity."""

    kind = "local"
    program = "engine"  # for log file names and messages
    embedding = False  # an embedding model: /v1/embeddings only

    def __init__(self, name: str, settings: LocalSettings, home: Path) -> None:
        self.name = name
        self.settings = settings
        self.home = home
        self.parallel = settings.parallel
        self.capacity = settings.parallel + settings.max_queue
        self.in_flight = 0
        self.port = settings.port or 0
        self.log_path = home / "logs" / f"{self.program}-{name}.log"
        bundled = BUNDLED.get(settings.model)
        self.chat_template = (
            settings.chat_template
            or (bundled and bundled.chat_template)
            or registered_chat_template(settings.model, home, settings.models)
        )
        self.stop = (
            settings.stop if settings.stop is not None else list(bundled.stop if bundled else ())
        )
        self._proc: asyncio.subprocess.Process | None = None
        self._client: OpenAICompatBackend | None = None
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()  # ready, or the process exited: waiters stop waiting
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._pid_file: Path | None = None
        self.error: str | None = None  # why the engine is not ready, for /readyz

    # -- what an engine says about itself -------------------------------------------------------

    def locate(self) -> str:
        """The model argument for the command line (raises with a hint when it is missing)."""
        raise NotImplementedError

    def command(self, model: str) -> list[str]:
        raise NotImplementedError

    def retry_at_once(self, exit_code: int) -> bool:
        """Called when the process died: True to restart now (the command may have changed)."""
        return False

    # -- lifecycle -------------------------------------------------------------------------------

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
        reaper.reap_stale(self.home)  # engines a killed gateway of this home left behind
        model = self.locate()
        self.port = self.settings.port or free_port()
        self.command(model)  # raises with an install hint before anything starts
        await self._open_client()
        self._supervisor = asyncio.create_task(self._supervise(model))

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

    async def _spawn(self, command: list[str]) -> asyncio.subprocess.Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it in order
                preexec_fn=reaper.die_with_parent(),  # and kill -9 of us kills it too
            )
        self._pid_file = reaper.record(self.home, self.name, proc.pid)
        return proc

    async def _supervise(self, model: str) -> None:
        """Start the engine, wait until it answers, restart it with backoff if it dies."""
        backoff = 1.0
        while not self._closing:
            started = time.monotonic()
            logger.info("starting %s for %s on 127.0.0.1:%d", self.program, self.name, self.port)
            self._proc = await self._spawn(self.command(model))
            ready = await self._wait_ready(self._proc)
            timed_out = not ready and self._proc.returncode is None  # killed by _wait_ready
            if ready:
                logger.info("local model %s ready in %.1fs", self.name, time.monotonic() - started)
                self.error = None
                self._ready.set()
                self._settled.set()
                backoff = 1.0
            code = await self._proc.wait()
            reaper.forget(self._pid_file)
            self._ready.clear()
            if self._closing:
                self._settled.set()
                return
            if self.retry_at_once(code):
                continue
            if not timed_out:
                self.error = f"{self.program} exited with code {code}; see {self.log_path}"
            logger.error("%s\n%s", self.error, self._log_tail())
            self._settled.set()  # whoever waits for this start gets the error now
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            self._settled.clear()

    async def _healthy(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(
                f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=2)
            ) as r:
                return r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> bool:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and proc.returncode is None:
                if await self._healthy(session):
                    return True
                await asyncio.sleep(0.1)
        if proc.returncode is None:
            self.error = f"{self.program} not ready after {self.settings.startup_timeout_s:.0f}s"
            logger.error("%s; stopping it", self.error)
            proc.kill()
        return False

    async def _watch(self) -> None:
        """An engine run elsewhere: ready while its /health answers 200 (checked every second)."""
        async with aiohttp.ClientSession() as session:
            while not self._closing:
                healthy = await self._healthy(session)
                self.error = None if healthy else f"engine at {self.url} is not healthy"
                if healthy:
                    self._ready.set()
                else:
                    self._ready.clear()
                await asyncio.sleep(1.0 if healthy else 0.2)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_settled(self) -> bool:
        """Wait until the engine is ready or its process has exited; True when ready."""
        if self.settings.url:
            return await self.wait_ready(self.settings.startup_timeout_s)
        await self._settled.wait()
        return self._ready.is_set()

    def rss_mb(self) -> float | None:
        """The engine process's resident memory, MB (None when not running or unknown)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return None
        try:
            with open(f"/proc/{proc.pid}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

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
            reaper.forget(self._pid_file)
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
