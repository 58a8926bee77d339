"""`thrifty serve --workers N`: N gateway processes on one port, sharing one local engine.

One Python process tops out at one core of gateway work; N workers (uvicorn's supervisor, which
restarts any that die) use N. What they share, and how:

- the local engine: this parent process starts llama-server once and every worker attaches to
  it (`local.url`), each admitting its share of the engine's slots and queue;
- the request log, keys, audit and review queue: the database (SQLite in WAL mode takes
  several writer processes; PostgreSQL for several machines);
- rate limits and budgets: Redis (`limits.redis_url`). Counted in-process they would be N
  times too generous, so N > 1 refuses to start while any limit exists without Redis;
- `/metrics`: Prometheus' multiprocess mode; whichever worker answers sums every worker's files.

The response cache needs no sharing to be correct: in memory, each worker just has its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from thrifty.config import Settings
from thrifty.store.keys import KeySpec, KeyStore

logger = logging.getLogger(__name__)

SETTINGS_ENV = "THRIFTY_WORKER_SETTINGS"  # the parent's resolved settings, as JSON


class UnsharedLimits(Exception):
    """Limits exist but would be counted per worker: the message says what to set."""


def check_shared_state(settings: Settings) -> None:
    """Refuse N workers whose rate limits or budgets would each count only their own share."""
    if settings.limits.redis_url:
        return
    where = []
    if settings.limits.tenants or settings.limits.default_tenant:
        where.append("limits in the config")
    with KeyStore(settings.database_url) as keys:
        limited = [r.id for r in keys.records() if r.status() == "active" and _limited(r.spec)]
    if limited:
        where.append(f"{len(limited)} API key(s) with limits ({', '.join(limited[:3])})")
    if where:
        raise UnsharedLimits(
            f"--workers {settings.workers}: {' and '.join(where)} must be counted in one place; "
            "set limits.redis_url (THRIFTY_LIMITS__REDIS_URL=redis://127.0.0.1:6379/0)"
        )


def _limited(spec: KeySpec) -> bool:
    return any(v is not None for v in (spec.rpm, spec.tpm, spec.daily_tokens, spec.daily_usd_nanos))


def worker_settings(settings: Settings, engine_url: str | None) -> Settings:
    """One worker's settings: attached to the shared engine, admitting its share of it."""
    worker = settings.model_copy(deep=True)
    local = worker.local
    if engine_url is not None:
        local.url = engine_url
        local.parallel = math.ceil(local.parallel / settings.workers)
        local.max_queue = math.ceil(local.max_queue / settings.workers)
    return worker


class SharedEngine:
    """The local engine every worker calls, supervised here on a thread with its own loop."""

    def __init__(self, settings: Settings) -> None:
        from thrifty.backends import local_engine

        self.backend = local_engine(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="engine", daemon=True)

    def start(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.backend.start(), self._loop).result()
        return self.backend.url

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.backend.close(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


@contextmanager
def _shared_metrics_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="thrifty-metrics-") as path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # read by workers when they import
        try:
            yield path
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def run(settings: Settings, **uvicorn_options: Any) -> None:
    """Serve with `settings.workers` processes until SIGINT/SIGTERM; then stop the engine."""
    import uvicorn

    check_shared_state(settings)
    engine = None
    if settings.local.enabled and not settings.local.url:
        engine = SharedEngine(settings)
    try:
        engine_url = engine.start() if engine is not None else None
        os.environ[SETTINGS_ENV] = worker_settings(settings, engine_url).model_dump_json()
        with _shared_metrics_dir():
            uvicorn.run(
                "thrifty.api.workers:worker_app",
                factory=True,
                workers=settings.workers,
                **uvicorn_options,
            )
    finally:
        os.environ.pop(SETTINGS_ENV, None)
        if engine is not None:
            engine.stop()


def worker_app() -> Any:
    """The app factory each worker process calls (uvicorn imports it by name)."""
    from thrifty.api.app import build_app
    from thrifty.api.limits import ServerLimits, configure

    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [worker {os.getpid()}] %(name)s: %(message)s",
    )
    _forget_dead_workers(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    configure(settings)  # this process's header timeout
    return ServerLimits(build_app(settings), settings)


def _forget_dead_workers(metrics_dir: str | None) -> None:
    """A worker killed by a signal left its live gauges behind: they would be summed forever."""
    if metrics_dir is None:
        return
    from prometheus_client import multiprocess

    for path in Path(metrics_dir).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, metrics_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True
