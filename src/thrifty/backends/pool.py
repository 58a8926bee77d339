"""Many local models in one gateway: engines loaded on demand, under a budget, and unloaded.

Every local model name (the default `local.model`, `local.models` entries, the bundled models,
`thrifty models add`) gets a `LocalModel` handle the registry routes to. A handle's first request
starts its engine (one supervised llama-server per model, see `engine.py`); the request waits
for it and the wait is reported (`x-thrifty-cold-start-ms`). Loading more than `local.max_loaded`
engines, or more than `local.max_memory_mb`, first unloads the least recently used idle engine
that is not pinned; an engine idle for `local.idle_unload_s` is unloaded too. The default model
and `pinned` ones load at start and stay.

A LoRA adapter (`adapter_of: BASE`) has no engine of its own: its base's engine loads every
adapter of that base (`--lora`, off by default) and a request for the adapter turns its own on,
so ten students cost one base plus ten small adapters.

Why one engine per model and not llama-server's router mode (`--models-dir`, `--models-max`):
measured here, the router adds a proxy hop to every request and offers neither pinning nor
idle unload nor per-model slots and queues; see benchmarks/local_engine.py and the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.backends.base import Endpoint, Reply, StreamStats
from thrifty.backends.engine import EngineUnavailable, ManagedEngine
from thrifty.backends.llamacpp import LlamaServerBackend
from thrifty.backends.models import (
    BUNDLED,
    ModelUnavailable,
    model_display_name,
    registered,
    registry_path,
    resolve_model,
)
from thrifty.config import LocalSettings
from thrifty.config.local import LocalModelSettings
from thrifty.errors import Overloaded, UpstreamUnavailable

logger = logging.getLogger(__name__)

# How long the request being served waited for its engine to load (None: it was loaded). Set in
# the request's task by `LocalModel`; the meter copies it into the answer's headers and metrics.
COLD_START_MS: ContextVar[float | None] = ContextVar("thrifty_cold_start_ms", default=None)

_TICK_S = 1.0  # how often idle engines and the model registry file are checked


@dataclass(slots=True)
class ModelSpec:
    """One local model name: where its weights are and how its engine runs."""

    name: str
    settings: LocalSettings  # local's, with this model's overrides; .model resolves the file
    pinned: bool = False
    adapter_of: str | None = None
    origin: str = "config"  # default | config | bundled | registry
    embedding: bool = False  # served on /v1/embeddings only (llama-server --embedding)

    @property
    def engine_key(self) -> str:
        return self.adapter_of or self.name

    def path(self, home: Path) -> Path:
        return resolve_model(self.settings.model, home, self.settings.models)

    def signature(self) -> tuple[Any, ...]:
        """What, when it changes, needs the engine restarted."""
        return (self.settings.model, self.adapter_of, self.settings.chat_template, self.embedding)


def model_specs(local: LocalSettings, home: Path) -> dict[str, ModelSpec]:
    """Every local model name, first source wins: default, local.models, bundled, registry."""
    default = model_display_name(local.model)
    entries = {
        name: LocalModelSettings(path=entry) if isinstance(entry, str) else entry
        for name, entry in local.models.items()
    }
    configured = entries.get(local.model)
    default_settings = local if configured is None else _override(local, local.model, configured)
    embedding = configured is not None and configured.embedding
    specs = {
        default: ModelSpec(default, default_settings, True, origin="default", embedding=embedding)
    }
    if local.url:  # an engine run elsewhere serves exactly one model
        return specs
    for name, entry in entries.items():
        if name not in specs:
            settings = _override(local, name, entry)
            specs[name] = ModelSpec(
                name, settings, entry.pinned, entry.adapter_of, "config", entry.embedding
            )
    for name in BUNDLED:
        if name not in specs:
            settings = local.model_copy(update={"model": name, "chat_template": None, "stop": None})
            specs[name] = ModelSpec(name, settings, origin="bundled")
    try:
        added = registered(home)
    except ModelUnavailable as exc:
        logger.error("%s", exc)
        added = {}
    for name, model in added.items():
        if name not in specs:
            settings = local.model_copy(
                update={"model": name, "chat_template": model.chat_template, "stop": None}
            )
            specs[name] = ModelSpec(name, settings, adapter_of=model.adapter_of, origin="registry")
    return specs


def _override(local: LocalSettings, name: str, entry: LocalModelSettings) -> LocalSettings:
    update: dict[str, Any] = {"model": name, "extra_args": [*local.extra_args, *entry.extra_args]}
    for key in ("parallel", "max_queue", "ctx_size", "chat_template", "stop"):
        value = getattr(entry, key)
        if value is not None:
            update[key] = value
    if entry.chat_template is None:
        update["chat_template"] = None  # the GGUF's own, not the default model's
    return local.model_copy(update=update)


@dataclass(slots=True)
class _Slot:
    """One loaded (or loading) engine: a model and every adapter of it."""

    key: str
    engine: ManagedEngine
    adapters: list[str]  # adapter model names, in the engine's --lora order
    estimate_mb: float
    last_used: float = field(default_factory=time.monotonic)
    waiting: int = 0  # requests waiting for it to load
    signature: tuple[Any, ...] = ()

    def memory_mb(self) -> float:
        return self.engine.rss_mb() or self.estimate_mb

    def busy(self) -> bool:
        return self.waiting > 0 or self.engine.in_flight > 0


EngineFactory = Callable[[ModelSpec, Path], ManagedEngine]


class EnginePool:
    """The engines of every local model; the registry's `local` (readiness: the default model)."""

    name = "local"
    kind = "local"

    def __init__(self, local: LocalSettings, home: Path, factory: EngineFactory) -> None:
        self.local = local
        self.home = home
        self.factory = factory
        self.specs = model_specs(local, home)
        self.default = model_display_name(local.model)
        self.handles = {name: LocalModel(self, name) for name in self.specs}
        self.slots: dict[str, _Slot] = {}
        self.on_change: Callable[[], None] | None = None  # the registry re-reads the names
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._registry_stamp = self._stamp()

    # -- the Backend protocol, for the default model (readiness, router load signals) ------------

    @property
    def error(self) -> str | None:
        slot = self.slots.get(self.default)
        return slot.engine.error if slot is not None else None

    @property
    def in_flight(self) -> int:
        return self.handles[self.default].in_flight

    @property
    def parallel(self) -> int:
        return self.handles[self.default].parallel

    def ready(self) -> bool:
        return self.handles[self.default].ready()

    def load(self) -> int:
        return self.handles[self.default].load()

    def saturated(self) -> bool:
        return self.handles[self.default].saturated()

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        return await self.handles[self.default].complete(endpoint, body)

    def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        return self.handles[self.default].stream(endpoint, body, stats)

    @property
    def url(self) -> str:
        slot = self.slots.get(self.default)
        return slot.engine.url if slot is not None else ""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        for spec in self.specs.values():
            if spec.pinned and spec.engine_key not in self.slots:
                async with self._lock:
                    await self._load(spec.engine_key)
        self._ticker = asyncio.create_task(self._tick())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for key in list(self.slots):
            await self._unload(key)

    # -- what /v1/models says --------------------------------------------------------------------

    def state(self, name: str) -> str:
        spec = self.specs.get(name)
        slot = self.slots.get(spec.engine_key) if spec is not None else None
        if slot is None or (spec is not None and spec.adapter_of and name not in slot.adapters):
            return "unloaded"
        return "loaded" if slot.engine.ready() else "loading"

    def card(self, name: str) -> dict[str, Any]:
        spec = self.specs[name]
        card: dict[str, Any] = {
            "state": self.state(name),
            "capabilities": ["embeddings"] if spec.embedding else ["chat", "completions"],
            "pinned": spec.pinned or spec.engine_key == self.default,
        }
        if spec.adapter_of:
            card["adapter_of"] = spec.adapter_of
        return card

    # -- loading and unloading -------------------------------------------------------------------

    async def acquire(self, name: str) -> tuple[ManagedEngine, int | None]:
        """The engine serving `name`, loaded and ready, and the adapter index it is to use."""
        spec = self.specs.get(name)
        if spec is None:
            raise UpstreamUnavailable(f"local model {name} was removed")
        key = spec.engine_key
        if key not in self.specs:
            raise UpstreamUnavailable(f"local model {name} is an adapter of unknown model {key}")
        began = time.monotonic()
        slot = self.slots.get(key)
        if slot is None or (spec.adapter_of and name not in slot.adapters):
            async with self._lock:
                slot = self.slots.get(key)
                if slot is not None and spec.adapter_of and name not in slot.adapters:
                    await self._drain(slot)  # added since the base loaded: restart with it
                    await self._unload(key)
                    slot = None
                if slot is None:
                    slot = await self._load(key)
        if not slot.engine.ready():
            slot.waiting += 1
            try:
                ready = await slot.engine.wait_settled()
            finally:
                slot.waiting -= 1
            if not ready:
                raise UpstreamUnavailable(
                    f"local model {name} failed to load: {slot.engine.error or 'unknown error'}",
                    headers={"retry-after": "5"},
                )
        waited = time.monotonic() - began
        COLD_START_MS.set(waited * 1000 if waited > 0.001 else None)
        slot.last_used = time.monotonic()
        return slot.engine, (slot.adapters.index(name) if spec.adapter_of else None)

    async def _load(self, key: str) -> _Slot:
        """Start `key`'s engine (not waiting for it) after making room. Holds the lock."""
        spec = self.specs[key]
        adapters = [n for n, s in self.specs.items() if s.adapter_of == key]
        engine = self.factory(spec, self.home)
        try:
            paths = [Path(engine.locate())] if not spec.settings.url else []
            paths += [self.specs[a].path(self.home) for a in adapters]
        except ModelUnavailable as exc:
            if key == self.default:
                raise  # `thrifty serve` stops with the hint
            raise UpstreamUnavailable(str(exc)) from None
        estimate = sum(_size(p) for p in paths) / 2**20 * 1.2 + 64
        await self._make_room(estimate, key)
        if adapters:
            if not isinstance(engine, LlamaServerBackend):
                raise UpstreamUnavailable(f"{engine.program} cannot serve LoRA adapters")
            engine.adapters = [str(p) for p in paths[1:]]
        slot = _Slot(key, engine, adapters, estimate, signature=spec.signature())
        self.slots[key] = slot
        logger.info("loading local model %s%s", key, f" with {adapters}" if adapters else "")
        try:
            await engine.start()
        except BaseException as exc:
            del self.slots[key]
            await engine.close()
            if isinstance(exc, (EngineUnavailable, ModelUnavailable)) and key != self.default:
                raise UpstreamUnavailable(f"local model {key} cannot load: {exc}") from None
            raise
        return slot

    async def _make_room(self, needed_mb: float, key: str) -> None:
        budget = self.local.max_memory_mb
        while True:
            used = sum(s.memory_mb() for s in self.slots.values())
            over_count = len(self.slots) >= self.local.max_loaded
            over_memory = budget is not None and used + needed_mb > budget
            if not over_count and not over_memory:
                return
            victims = [s for s in self.slots.values() if not self._pinned(s.key) and not s.busy()]
            if not victims:
                why = (
                    f"{len(self.slots)} engines loaded (local.max_loaded)"
                    if over_count
                    else f"{used:.0f} MB of {budget} MB used (local.max_memory_mb)"
                )
                raise Overloaded(
                    f"no room to load local model {key}: {why}, all busy or pinned",
                    headers={"retry-after": "2"},
                )
            victim = min(victims, key=lambda s: s.last_used)
            logger.info("unloading local model %s to make room for %s", victim.key, key)
            await self._unload(victim.key)

    def _pinned(self, key: str) -> bool:
        spec = self.specs.get(key)
        return key == self.default or (spec is not None and spec.pinned)

    async def _drain(self, slot: _Slot, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while slot.engine.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _unload(self, key: str) -> None:
        slot = self.slots.pop(key, None)
        if slot is not None:
            logger.info("unloading local model %s", key)
            await slot.engine.close()

    # -- the clock: idle unload and the model registry file --------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                await self._unload_idle()
                stamp = self._stamp()
                if stamp != self._registry_stamp:
                    self._registry_stamp = stamp
                    await self.refresh()
            except Exception:  # the clock must keep ticking
                logger.exception("local model upkeep failed")

    async def _unload_idle(self) -> None:
        idle = self.local.idle_unload_s
        if idle is None:
            return
        now = time.monotonic()
        for slot in list(self.slots.values()):
            if not self._pinned(slot.key) and not slot.busy() and now - slot.last_used > idle:
                async with self._lock:
                    if not slot.busy() and self.slots.get(slot.key) is slot:
                        logger.info("local model %s idle for %.0fs", slot.key, now - slot.last_used)
                        await self._unload(slot.key)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = registry_path(self.home).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def refresh(self) -> None:
        """Re-read the model names (after `models add` / `remove`); unload what went or changed."""
        specs = model_specs(self.local, self.home)
        async with self._lock:
            for key, slot in list(self.slots.items()):
                spec = specs.get(key)
                if spec is None or spec.signature() != slot.signature:
                    await self._drain(slot)
                    await self._unload(key)
            self.specs = specs
            for name in list(self.handles):
                if name not in specs:
                    del self.handles[name]
            for name in specs:
                self.handles.setdefault(name, LocalModel(self, name))
        logger.info("local models: %s", ", ".join(specs))
        if self.on_change is not None:
            self.on_change()


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a directory (a vLLM model)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


class LocalModel:
    """One local model name as a backend: its requests load its engine when they need it."""

    kind = "local"

    def __init__(self, pool: EnginePool, name: str) -> None:
        self.pool = pool
        self.name = name

    def _engine(self) -> ManagedEngine | None:
        spec = self.pool.specs.get(self.name)
        slot = self.pool.slots.get(spec.engine_key) if spec is not None else None
        return slot.engine if slot is not None else None

    @property
    def in_flight(self) -> int:
        engine = self._engine()
        return engine.in_flight if engine is not None else 0

    @property
    def parallel(self) -> int:
        spec = self.pool.specs.get(self.name)
        if spec is None:
            return 1
        return self.pool.specs.get(spec.engine_key, spec).settings.parallel

    async def start(self) -> None:
        """The pool starts engines; a handle has nothing of its own to start."""

    async def close(self) -> None:
        """The pool stops engines."""

    def ready(self) -> bool:
        return self.pool.state(self.name) == "loaded"

    def load(self) -> int:
        engine = self._engine()
        return engine.load() if engine is not None else 0

    def saturated(self) -> bool:
        engine = self._engine()
        return engine.saturated() if engine is not None else False

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        engine, adapter = await self.pool.acquire(self.name)
        return await engine.complete(endpoint, _with_adapter(body, adapter, engine))

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        engine, adapter = await self.pool.acquire(self.name)
        chunks = engine.stream(endpoint, _with_adapter(body, adapter, engine), stats)
        try:
            async for batch in chunks:
                yield batch
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]


def _with_adapter(body: dict[str, Any], adapter: int | None, engine: Any) -> dict[str, Any]:
    """llama-server's per-request adapter choice: this one on (None: none), every other off.

    Every adapter is named, at scale 0 when off: a request without `lora` gets the engine's
    defaults but keeps the slot's cached prompt, computed with whichever adapter the slot ran
    last (an adapter's answer would leak into the base's); a changed set clears that cache.
    """
    count = len(getattr(engine, "adapters", None) or ())
    if count == 0:
        return body
    lora = [{"id": i, "scale": 1.0 if i == adapter else 0.0} for i in range(count)]
    return {**body, "lora": lora}
