"""Backends answer requests; the registry maps every model name a client may use to one of them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from thrifty.backends.anthropic import AnthropicBackend
from thrifty.backends.base import Backend, Endpoint, Reply, StreamStats
from thrifty.backends.embedder import LocalEmbedder
from thrifty.backends.engine import ManagedEngine
from thrifty.backends.llamacpp import LlamaServerBackend
from thrifty.backends.models import model_display_name
from thrifty.backends.openai_compat import OpenAICompatBackend
from thrifty.backends.pool import EnginePool, LocalModel, ModelSpec
from thrifty.backends.vllm import VLLMBackend
from thrifty.config import Settings
from thrifty.config.embeddings import ENCODERS

__all__ = [
    "CAPABILITIES",
    "Backend",
    "Registry",
    "Reply",
    "StreamStats",
    "Target",
    "build_registry",
    "local_engine",
    "local_pool",
]


CAPABILITIES = frozenset({"tools", "vision", "json_schema", "embeddings", "audio", "files"})
# llama-server: tools through the grammar path (backends/tools.py), response_format natively
LOCAL_CAPABILITIES = frozenset({"tools", "json_schema"})
EMBEDDING_CAPABILITIES = frozenset({"embeddings"})  # a GGUF encoder: /v1/embeddings only
ANTHROPIC_CAPABILITIES = frozenset({"tools", "vision"})  # no response_format, no embeddings


@dataclass(frozen=True, slots=True)
class Target:
    """A place an answer can come from: its route name, backend, and the model name it expects."""

    route: str  # "local" or the upstream alias; what x-thrifty-route says
    backend: Backend
    model: str
    upstream: str | None = None  # upstream's name (for breakers and metrics); None for local
    capabilities: frozenset[str] = CAPABILITIES  # features it can honour (routing skips others)
    # Request fields the model mapping sends along, e.g. DeepSeek's {"thinking": {...}}; the
    # client's own fields win over them (see `request_body`).
    params: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, hash=False
    )

    def request_body(self, body: Mapping[str, Any], stream: bool) -> dict[str, Any]:
        """The body this target receives: the client's, under the target's model name.

        Fields the target's model mapping carries (e.g. ``thinking``) are added under the
        client's: a field the client sent itself wins, so a client may still switch thinking per
        request.
        """
        out = {key: copy.deepcopy(value) for key, value in self.params.items()}
        out.update(body)
        out.pop("thrifty", None)  # our request extensions stay here
        out["model"] = self.model
        if stream:
            out["stream_options"] = {
                "include_usage": True
            }  # metering needs it; stripped if unasked
        return out


class Registry:
    """Model names -> targets. Built once from settings; read on every request."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}
        self.backends: list[Backend] = []
        self.local: EnginePool | None = None
        self._local_aliases: list[str] = []
        self._local_capabilities = CAPABILITIES
        self.embedders: dict[str, Target] = {}  # /v1/embeddings names of local embedders
        self.local_embedder: str | None = None  # embeddings.local_model when a local model

    def add_local(
        self, pool: EnginePool, aliases: list[str], capabilities: frozenset[str] = CAPABILITIES
    ) -> None:
        """Every model of `pool` by its name; `local` and `aliases` name the default one."""
        self.local = pool
        self._local_capabilities = capabilities
        self.backends.append(pool)  # started, stopped and checked for readiness as one
        self._local_aliases = ["local", *aliases]
        pool.on_change = self.sync_local
        self.sync_local()

    def sync_local(self) -> None:
        """Follow the pool's names (they change with `thrifty models add` / `remove`)."""
        pool = self.local
        if pool is None:
            return
        for name, target in list(self.targets.items()):
            if target.route == "local" and target.upstream is None:
                del self.targets[name]

        def caps(name: str) -> frozenset[str]:
            spec = pool.specs.get(name)
            return EMBEDDING_CAPABILITIES if spec and spec.embedding else self._local_capabilities

        default = Target(
            "local", pool.handles[pool.default], pool.default, capabilities=caps(pool.default)
        )
        for name in [*self._local_aliases, pool.default]:
            self.targets.setdefault(name, default)
        for name, handle in pool.handles.items():
            self.targets.setdefault(name, Target("local", handle, name, capabilities=caps(name)))
        if self.local_embedder in pool.handles:  # `local` on /v1/embeddings: a GGUF embedder
            self.embedders["local"] = self.targets[self.local_embedder]

    def model_cards(self, created: int, first: dict[str, str]) -> list[dict[str, Any]]:
        """`/v1/models`: the names in `first` (name -> owner), then every target's name.

        Local models say whether they are loaded (`state`: loaded, loading, unloaded) and what
        they can do (`capabilities`)."""
        owners = dict(first)
        for name, target in self.targets.items():
            owners.setdefault(name, target.upstream or "thrifty")
        cards = []
        for name, owner in owners.items():
            card: dict[str, Any] = {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": owner,
            }
            local = self.targets.get(name)
            if self.local is not None and local is not None and local.upstream is None:
                card.update(self.local.card(local.model))
                both = [*card["capabilities"], *sorted(local.capabilities)]
                card["capabilities"] = list(dict.fromkeys(both))
            cards.append(card)
        return cards

    def add(self, names: list[str], target: Target) -> None:
        if target.backend not in self.backends and not isinstance(target.backend, LocalModel):
            self.backends.append(target.backend)
        for name in names:
            self.targets.setdefault(name, target)

    def resolve(self, name: str, endpoint: Endpoint = "chat") -> Target | None:
        if endpoint == "embeddings":  # `local` names the local embedder there
            target = self.embedders.get(name) or self.targets.get(name)
            return target if target is not None and "embeddings" in target.capabilities else None
        return self.targets.get(name)

    def cloud_routes(self) -> list[str]:
        return sorted({t.route for t in self.targets.values() if t.upstream is not None})

    def names(self) -> list[str]:
        return list(self.targets)


def local_engine(settings: Settings) -> ManagedEngine:
    """The engine `local.engine` names, for `local.model`."""
    engine = VLLMBackend if settings.local.engine == "vllm" else LlamaServerBackend
    return engine(model_display_name(settings.local.model), settings.local, settings.home)


def _engine_for(spec: ModelSpec, home: Path) -> ManagedEngine:
    engine = VLLMBackend if spec.settings.engine == "vllm" else LlamaServerBackend
    made = engine(spec.name, spec.settings, home)
    made.embedding = spec.embedding
    return made


def local_pool(settings: Settings) -> EnginePool:
    """Every local model (`local.model` the default), each loaded when first asked for."""
    return EnginePool(settings.local, settings.home, _engine_for)


def build_registry(settings: Settings) -> Registry:
    registry = Registry()
    local = settings.local
    if settings.embeddings.local_model not in ENCODERS:
        registry.local_embedder = settings.embeddings.local_model
    if local.enabled:
        caps = LOCAL_CAPABILITIES if local.engine == "llama.cpp" else frozenset({"json_schema"})
        registry.add_local(local_pool(settings), local.aliases, caps)
    embed = settings.embeddings
    if embed.local_model in ENCODERS:
        embedder = LocalEmbedder(embed.local_model, embed.threads)
        target = Target("local", embedder, embed.local_model, capabilities=EMBEDDING_CAPABILITIES)
        registry.backends.append(embedder)
        for alias in ("local", embed.local_model):
            registry.embedders.setdefault(alias, target)
    for up in settings.upstreams:
        kind = AnthropicBackend if up.api == "anthropic" else OpenAICompatBackend
        client = kind(
            up.name,
            up.base_url,
            api_key=up.api_key(),
            connect_timeout_s=up.connect_timeout_s,
            timeout_s=up.timeout_s,
            stream_idle_timeout_s=up.stream_idle_timeout_s,
        )
        every = ANTHROPIC_CAPABILITIES if up.api == "anthropic" else CAPABILITIES
        caps = every if up.capabilities is None else frozenset(up.capabilities)
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
