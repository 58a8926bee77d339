"""The local engine: llama.cpp's own `llama-server`, started and supervised as a subprocess.

Why a subprocess and not llama-cpp-python in-process: llama-server batches requests continuously
across its slots and keeps a prefix cache, and it runs outside the gateway's GIL. Measured on a
2-core box, it serves ~137 tok/s in aggregate with 4 clients, where llama-cpp-python's server,
one request at a time behind a lock, fell to 35-40 tok/s. The gateway talks to it over loopback
HTTP with the same client as any upstream, and adds what llama-server lacks: admission control
(a bounded queue with a clean 503), readiness, restart on crash, and AMX detection.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from thrifty.backends import local_api
from thrifty.backends.base import Endpoint, Reply, StreamStats
from thrifty.backends.engine import ManagedEngine, find_program
from thrifty.backends.models import resolve_model
from thrifty.config import LocalSettings
from thrifty.errors import InvalidRequest

logger = logging.getLogger(__name__)

_INSTALL_HINT = (
    "llama-server not found: run `make engine` (builds it once from the llama.cpp source that "
    "ships with llama-cpp-python), or set local.llama_server / $THRIFTY_LLAMA_SERVER"
)


def find_llama_server(configured: str | None = None) -> str:
    return find_program("llama-server", configured, "THRIFTY_LLAMA_SERVER", _INSTALL_HINT)


def default_threads() -> int:
    """Engine threads when local.threads is unset: every usable core but one, at least one.

    llama.cpp's threads wait for each other at every step, so one preempted thread stalls them
    all: measured on a 2-core box with other work on it (llama-batched-bench, SmolLM2, 128-token
    prompts), 2 threads generated 2.6-10 tok/s and processed prompts at 18-49 tok/s, where 1
    thread did 46-90 and 94-153. The core left over runs the gateway itself.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and "amx_tile" in line for line in f)
    except OSError:
        return False


class LlamaServerBackend(ManagedEngine):
    """One llama-server process serving one GGUF model."""

    program = "llama-server"

    def __init__(self, name: str, settings: LocalSettings, home: Path) -> None:
        super().__init__(name, settings, home)
        self._no_repack = False
        # LoRA adapter GGUFs loaded beside the model, off until a request names one (its index)
        self.adapters: list[str] = []

    def locate(self) -> str:
        return str(resolve_model(self.settings.model, self.home, self.settings.models))

    def command(self, model: str) -> list[str]:
        s = self.settings
        cmd = [
            find_llama_server(s.llama_server),
            "--model", model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--alias", self.name,
            "--threads", str(s.threads or default_threads()),
            "--threads-batch", str(s.threads_batch or s.threads or default_threads()),
            "--parallel", str(s.parallel),
            "--ctx-size", str(s.ctx_size * s.parallel),
            "--metrics",
            "--no-webui",
            "--jinja",  # the model's own chat template, as its authors wrote it
        ]  # fmt: skip
        if self.embedding:
            cmd.append("--embedding")  # pooling as the GGUF says (mean for all-MiniLM)
        if self.chat_template:
            cmd += ["--chat-template", self.chat_template]
        for adapter in self.adapters:
            cmd += ["--lora", adapter]
        if self.adapters:
            cmd.append("--lora-init-without-apply")  # scale 0 until a request asks for one
        if self._no_repack:
            cmd.append("--no-repack")
        return [*cmd, *s.extra_args]

    def retry_at_once(self, exit_code: int) -> bool:
        died_of = -exit_code if exit_code < 0 else None
        if died_of in (signal.SIGSEGV, signal.SIGILL) and not self._no_repack and cpu_has_amx():
            # Some VMs advertise AMX but fault on it; repacked weights use it. Go without.
            logger.warning("llama-server crashed on an AMX CPU; restarting with --no-repack")
            self._no_repack = True
            return True
        return False

    # llama-server's OpenAI dialect, fixed on the way in and out (tools, logprobs, defaults)
    def _local_call(self, endpoint: Endpoint, body: dict[str, Any]) -> local_api.LocalCall:
        if self.embedding != (endpoint == "embeddings"):
            what = "an embedding model: use /v1/embeddings" if self.embedding else "no embedder"
            raise InvalidRequest(f"the local model {self.name} is {what}", param="model")
        limit = self.settings.default_max_tokens
        return local_api.prepare(endpoint, body, default_max_tokens=limit, slots=self.parallel)

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        call = self._local_call(endpoint, body)
        return call.reply(await super().complete(endpoint, call.body))

    def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        call = self._local_call(endpoint, body)
        return call.stream(super().stream(endpoint, call.body, stats))
