"""Local engine settings: llama.cpp (llama-server) or vLLM."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thrifty.config._base import _Section


class VLLMSettings(_Section):
    """`vllm serve` options, used when local.engine is vllm (threads and llama_server are not)."""

    executable: str | None = Field(
        None, description="Path to `vllm`; default: $THRIFTY_VLLM, then beside Python, then PATH."
    )
    gpu_memory_utilization: float = Field(
        0.9, description="Share of GPU memory vLLM may take.", gt=0, le=1
    )
    dtype: str = Field("auto", description="Weights' dtype (auto, bfloat16, float16).")
    tensor_parallel_size: int = Field(1, description="GPUs one model is split over.", ge=1)
    require_gpu: bool = Field(
        True, description="Refuse to start without an NVIDIA GPU (false for a CPU build of vLLM)."
    )


class LocalModelSettings(_Section):
    """One entry of `local.models` written as a mapping: where the model is and how it is served."""

    path: str = Field(description="GGUF file (a model, or a LoRA adapter with adapter_of).")
    adapter_of: str | None = Field(
        None,
        description="This GGUF is a LoRA adapter of that local model: it is served on the "
        "base's engine (one copy of the base for all its adapters), picked per request.",
    )
    pinned: bool = Field(False, description="Load at start and never unload.")
    embedding: bool = Field(
        False,
        description="An embedding model (a GGUF encoder such as all-MiniLM or bge): served with "
        "llama-server --embedding, on /v1/embeddings only.",
    )
    parallel: int | None = Field(None, description="Slots; default: local.parallel.", ge=1)
    max_queue: int | None = Field(None, description="Queue; default: local.max_queue.", ge=0)
    ctx_size: int | None = Field(None, description="Context per slot; default: local's.", ge=256)
    chat_template: str | None = Field(
        None, description="Chat template (built-in name or Jinja); default: the GGUF's own."
    )
    stop: list[str] | None = Field(None, description="Stop sequences added when none are set.")
    extra_args: list[str] = Field(default_factory=list, description="More engine arguments.")


class LocalSettings(_Section):
    """The local engine: llama.cpp's llama-server, managed as a subprocess."""

    enabled: bool = Field(True, description="Serve a local model at all.")
    url: str | None = Field(
        None,
        description="An llama-server already running at this URL (http://127.0.0.1:8080) to use "
        "instead of starting one: a sidecar, or the engine `serve --workers` shares.",
    )
    model: str = Field(
        "smollm2-135m",
        description="Bundled model name (smollm2-135m, gemma3-270m), a name from `models`, "
        "or a path to a GGUF file.",
    )
    models: dict[str, str | LocalModelSettings] = Field(
        default_factory=dict,
        description="More local models by name, each served in the same gateway: name -> GGUF "
        "path, or name -> {path, pinned, parallel, max_queue, ctx_size, chat_template, stop, "
        "adapter_of, embedding, extra_args}.",
    )
    max_loaded: int = Field(
        3,
        description="Engines loaded at once; loading one more first unloads the least recently "
        "used idle one that is not pinned (adapters share their base's engine).",
        ge=1,
    )
    max_memory_mb: int | None = Field(
        None,
        description="Memory all loaded engines may take (measured resident size; a model not "
        "yet loaded counts its file size); null: only max_loaded bounds them.",
        ge=1,
    )
    idle_unload_s: float | None = Field(
        600,
        description="Unload an engine nobody asked for this long (pinned ones and the default "
        "model stay); null: never.",
        gt=0,
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="More model names that this engine answers to (besides `local` and its name).",
    )
    system_prompt: str | None = Field(
        "You are a helpful assistant.",
        description="System message added to chat requests that carry none (tiny models follow "
        "instructions far better with one); null to send requests as they are.",
    )
    chat_template: str | None = Field(
        None,
        description="Chat template for llama-server: a built-in name (chatml, llama3, gemma, ...) "
        "or Jinja source; default: the model's own (bundled base models get a Q/A layout).",
    )
    stop: list[str] | None = Field(
        None,
        description="Stop sequences added to chat requests that set none; default: the "
        "bundled model's (if any).",
    )
    default_max_tokens: int | None = Field(
        512,
        description="max_tokens for requests that set none (a small model can loop until its "
        "context is full); null for no default.",
        ge=1,
    )
    threads: int | None = Field(
        None,
        description="CPU threads generating tokens; default: every core but one (llama.cpp's "
        "threads stall each other when anything else needs a core).",
        ge=1,
    )
    threads_batch: int | None = Field(
        None, description="CPU threads processing prompts; default: same as threads.", ge=1
    )
    parallel: int = Field(4, description="Requests decoded together (llama-server slots).", ge=1)
    ctx_size: int = Field(4096, description="Context window per slot, in tokens.", ge=256)
    max_queue: int = Field(
        16,
        description="Requests allowed to wait for a slot; beyond it the gateway answers 503.",
        ge=0,
    )
    llama_server: str | None = Field(
        None,
        description="Path to llama-server; default: $THRIFTY_LLAMA_SERVER, then next to the "
        "Python interpreter (make installs it into .venv/bin), then PATH.",
    )
    port: int = Field(0, description="Port for llama-server on 127.0.0.1; 0 picks a free one.")
    startup_timeout_s: float = Field(180, description="How long to wait for the model to load.")
    request_timeout_s: float = Field(
        300, description="Longest silence from the engine mid-request."
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Extra engine arguments, passed as they are."
    )
    engine: Literal["llama.cpp", "vllm"] = Field(
        "llama.cpp",
        description="What runs the model: llama.cpp's llama-server (GGUF, CPU or GPU), or "
        "`vllm serve` (a GPU; `model` is then a local Hugging Face directory or a GGUF path).",
    )
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)
