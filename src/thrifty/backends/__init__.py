"""Backends answer requests; the registry maps every model name a client may use to one of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from thrifty.backends.base import Backend, Reply, StreamStats
from thrifty.backends.engine import ManagedEngine
from thrifty.backends.llamacpp import LlamaServerBackend
from thrifty.backends.models import model_display_name
from thrifty.backends.openai_compat import OpenAICompatBackend
from thrifty.backends.vllm import VLLMBackend
from thrifty.config import Settings

__all__ = [
    "CAPABILITIES",
    "Backend",
    "Registry",
    "Reply",
    "StreamStats",
    "Target",
    "build_registry",
    "local_engine",
]


CAPABILITIES = frozenset({"tools", "vision", "json_schema", "embeddings"})
# llama-server: tools through the grammar path (backends/tools.py), response_format natively
LOCAL_CAPABILITIES = frozenset({"tools", "json_schema"})


@dataclass(frozen=True, slots=True)
class Target:
    """A place an answer can come from: its route name, backend, and the model name it expects."""

    route: str  # "local" or the upstream alias; what x-thrifty-route says
    backend: Backend
    model: str
    upstream: str | None = None  # upstream's name (for breakers and metrics); None for local
    capabilities: frozenset[str] = CAPABILITIES  # features it can honour (routing skips others)
    # Request fields the model mapping sends along, e.g. DeepSeek's {"thinking": {...}}; the
    # client's own fields win over them (see gateway.call.upstream_body).
    params: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False
    )


class Registry:
    """Model names -> targets. Built once from settings; read on every request."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}
        self.backends: list[Backend] = []
        self.local: ManagedEngine | None = None

    def add(self, names: list[str], target: Target) -> None:
        if target.backend not in self.backends:
            self.backends.append(target.backend)
        for name in names:
            self.targets.setdefault(name, target)

    def resolve(self, name: str) -> Target | None:
        return self.targets.get(name)

    def cloud_routes(self) -> list[str]:
        return sorted({t.route for t in self.targets.values() if t.upstream is not None})

    def names(self) -> list[str]:
        return list(self.targets)


def local_engine(settings: Settings) -> ManagedEngine:
    """The engine `local.engine` names, for `local.model`."""
    engine = VLLMBackend if settings.local.engine == "vllm" else LlamaServerBackend
    return engine(model_display_name(settings.local.model), settings.local, settings.home)


def build_registry(settings: Settings) -> Registry:
    registry = Registry()
    local = settings.local
    if local.enabled:
        backend = local_engine(settings)
        name = backend.name
        registry.local = backend
        caps = LOCAL_CAPABILITIES if local.engine == "llama.cpp" else frozenset({"json_schema"})
        registry.add(
            ["local", name, *local.aliases], Target("local", backend, name, capabilities=caps)
        )
    for up in settings.upstreams:
        client = OpenAICompatBackend(
            up.name,
            up.base_url,
            api_key=up.api_key(),
            connect_timeout_s=up.connect_timeout_s,
            timeout_s=up.timeout_s,
        )
        caps = CAPABILITIES if up.capabilities is None else frozenset(up.capabilities)
        for alias, (upstream_model, params) in up.targets().items():
            target = Target(
                alias,
                client,
                upstream_model,
                upstream=up.name,
                capabilities=caps,
                params=MappingProxyType(params),
            )
            registry.add([alias], target)
    return registry
