"""The local engine on a GPU: `vllm serve`, started and supervised like llama-server.

vLLM batches continuously with paged attention: on a GPU it serves far more tokens per second
than llama.cpp. It speaks the OpenAI API, so the gateway calls it like every other engine. The
model is a local Hugging Face directory (what `thrifty finetune` writes) or a GGUF file; nothing
is fetched from a hub. Kubernetes fleets run vLLM under KServe instead (deploy/kserve) and name
it as an upstream.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from thrifty.backends.engine import EngineUnavailable, ManagedEngine, find_program
from thrifty.backends.models import resolve_model

_INSTALL_HINT = (
    "vllm not found: install vLLM on the GPU machine (pip install vllm), or set "
    "local.vllm.executable / $THRIFTY_VLLM"
)


def gpu_present() -> bool:
    """An NVIDIA driver is loaded (the device node exists) or nvidia-smi is installed."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


class VLLMBackend(ManagedEngine):
    """One `vllm serve` process serving one model."""

    program = "vllm"

    def locate(self) -> str:
        directory = Path(self.settings.model).expanduser()
        if directory.is_dir():
            return str(directory)
        return str(resolve_model(self.settings.model, self.home, self.settings.models))

    def command(self, model: str) -> list[str]:
        s, v = self.settings, self.settings.vllm
        if v.require_gpu and not gpu_present():
            raise EngineUnavailable(
                "local.engine is vllm but this machine has no NVIDIA GPU: use the llama.cpp "
                "engine, or set local.vllm.require_gpu: false for a CPU build of vLLM"
            )
        cmd = [
            find_program("vllm", v.executable, "THRIFTY_VLLM", _INSTALL_HINT),
            "serve", model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--served-model-name", self.name,
            "--max-num-seqs", str(s.parallel),
            "--max-model-len", str(s.ctx_size),
            "--gpu-memory-utilization", str(v.gpu_memory_utilization),
            "--dtype", v.dtype,
            "--tensor-parallel-size", str(v.tensor_parallel_size),
        ]  # fmt: skip
        if self.chat_template:
            cmd += ["--chat-template", self.chat_template]
        return [*cmd, *s.extra_args]
