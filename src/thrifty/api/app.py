"""The app factory: `build_app(settings)` wires the pipeline, and its lifespan owns every resource.

Nothing is created at import time. The lifespan opens the request log, starts the backends (the
local engine loads in the background: `/readyz` says when it is up) and closes them in order on
shutdown, SIGTERM included, flushing the request log last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty import __version__
from thrifty.api.admin import KeyAdmin
from thrifty.api.auth import Authenticator
from thrifty.api.feedback import feedback_endpoint
from thrifty.api.openai import OpenAIService
from thrifty.api.openapi import openapi_schema
from thrifty.api.responses import error_response, json_response
from thrifty.api.usage import usage_endpoint
from thrifty.backends import Registry, build_registry
from thrifty.config import Settings
from thrifty.costs.pricebook import PriceBook
from thrifty.errors import MethodNotAllowed, NotFound, ThriftyError
from thrifty.gateway.access import Admit, ScopeTargets
from thrifty.gateway.breaker import CircuitBreaker
from thrifty.gateway.cache import ResponseCache
from thrifty.gateway.call import Caller
from thrifty.gateway.capture import build_capture
from thrifty.gateway.experiments import Experiments
from thrifty.gateway.guard import Guard
from thrifty.gateway.limits import PriceEstimate, build_limiter
from thrifty.gateway.meter import Meter
from thrifty.gateway.metrics import Metrics
from thrifty.gateway.moderation import Moderation, build_self_check
from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.pipeline import Gateway
from thrifty.gateway.privacy import PIIScan, PrivacyGuard
from thrifty.gateway.route import ModelRoute
from thrifty.gateway.router import Router
from thrifty.store.audit import AuditLog
from thrifty.store.batching import BatchWriter
from thrifty.store.keys import KeyStore
from thrifty.store.request_log import RequestLog
from thrifty.store.review import ReviewQueue
from thrifty.store.samples import SampleLog

logger = logging.getLogger(__name__)


class Runtime:
    """Everything one gateway process holds: settings, backends, pipeline, log, metrics."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or build_registry(settings)
        self.metrics = Metrics()
        self.prices = PriceBook.load(settings.prices)
        store = settings.store
        self.request_log = RequestLog(
            settings.database_url,
            batch_size=store.batch_size,
            flush_interval_s=store.flush_interval_s,
            max_buffered=store.max_buffered_rows,
            on_drop=self.metrics.store_dropped.labels(RequestLog.name).inc,
            spool=settings.home / "spool" if store.spool else None,
        )
        self.keys = KeyStore(settings.database_url)
        self.auth = Authenticator(self.keys, settings.auth, settings.host)
        self.audit = AuditLog(
            settings.database_url,
            flush_interval_s=store.flush_interval_s,
            max_buffered=store.max_buffered_rows,
            on_drop=self.metrics.store_dropped.labels(AuditLog.name).inc,
        )
        self.breakers = {
            up.name: CircuitBreaker(up.breaker.failures, up.breaker.window_s, up.breaker.cooldown_s)
            for up in settings.upstreams
        }
        detector = PIIDetector(settings.privacy.detect)
        self.router = Router(settings.router, self.registry)
        self.experiments = Experiments(settings.experiments, self.registry, self.router.models)
        caller = Caller(
            self.breakers,
            {up.name: up.max_retries for up in settings.upstreams},
            on_retry=lambda name: self.metrics.retries.labels(name).inc(),
        )
        self.review = ReviewQueue(settings.database_url)
        self.moderation = Moderation(settings.moderation, review=self.review.add)
        self_check = build_self_check(settings, caller, self.registry, self.moderation)
        estimate = PriceEstimate(self.prices, settings.costs.cny_per_usd)
        self.limiter = build_limiter(settings.limits, estimate)
        self.cache = ResponseCache(settings.cache, self.metrics)
        self.capture = build_capture(  # None unless a tenant opted in
            settings, detector, on_drop=self.metrics.store_dropped.labels(SampleLog.name).inc
        )
        self.gateway = Gateway(
            stages=[
                Admit(self.registry, self.router.models),
                Guard(settings.limits),
                self.moderation,
                *([self_check] if self_check is not None else []),
                PIIScan(detector),
                self.experiments,  # before the router: rewrites the model to the variant's
                self.router,
                ModelRoute(self.registry),
                PrivacyGuard(settings.privacy, self.registry, detector),
                ScopeTargets(self.router.models),
                self.cache,  # after privacy and key scope decided the final targets
                self.limiter,  # last: counts only what is about to be called, on its final route
            ],
            caller=caller,
            meter=Meter(settings.costs, self.prices, self.registry),
            finishers=[
                self.limiter.finish,  # after the meter: charges the real usage and cost
                self.moderation.finish,
                self.cache.finish,  # stores a model's completed answer
                self.request_log.append,
                self.metrics.observe,
            ],
        )
        if settings.auth.audit_requests:
            self.gateway.finishers.append(self.audit.record)
        if self.capture is not None:
            self.gateway.stages.append(self.capture)  # last: the targets are final
            self.gateway.finishers.append(self.capture.finish)
        self.metrics.on_collect(self._refresh_gauges)
        self._gauges: asyncio.Task[None] | None = None
        self.started_at = int(time.time())

    def _refresh_gauges(self) -> None:
        local = self.registry.local
        if local is not None:
            self.metrics.queue_depth.set(local.load())
            self.metrics.in_flight.set(local.in_flight)
        for name, breaker in self.breakers.items():
            self.metrics.breaker.labels(name).set(int(breaker.state))
        writers: list[BatchWriter[Any]] = [self.request_log, self.audit]
        if self.capture is not None:
            writers.append(self.capture.log)
        for writer in writers:
            self.metrics.store_buffered.labels(writer.name).set(writer.buffered)

    async def start(self) -> None:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.keys.open()
        self.auth.open()  # refuses a keyless start on a non-loopback address, before anything runs
        self.request_log.open()
        self.audit.open()
        self.review.open()
        if self.capture is not None:
            self.capture.open()
        for backend in self.registry.backends:
            await backend.start()
        if self.metrics.shared_dir is not None:  # one of `serve --workers N`
            self._gauges = asyncio.create_task(self._refresh_shared_gauges())

    async def _refresh_shared_gauges(self) -> None:
        """Workers that nobody scrapes still publish their live gauges, once a second."""
        while True:
            self.metrics.refresh()
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._gauges is not None:
            self._gauges.cancel()
        for backend in self.registry.backends:
            try:
                await backend.close()
            except Exception:
                logger.exception("closing %s failed", backend.name)
        await self.limiter.close()
        await self.cache.flush()  # writes in flight land before the threads stop
        self.cache.close()
        self.request_log.close()
        self.audit.close()
        self.review.close()
        if self.capture is not None:
            self.capture.close()
        self.auth.close()
        self.keys.close()

    def model_cards(self) -> list[dict[str, Any]]:
        """`/v1/models`: router names, experiment names, then every model name of a target."""
        owners = dict.fromkeys(sorted(self.router.models), "thrifty-router")
        owners.update(dict.fromkeys(sorted(self.settings.experiments), "thrifty-experiment"))
        for name, target in self.registry.targets.items():
            owners.setdefault(name, target.upstream or "thrifty")
        return [
            {"id": name, "object": "model", "created": self.started_at, "owned_by": owner}
            for name, owner in owners.items()
        ]

    def ready(self) -> tuple[bool, dict[str, Any]]:
        local = self.registry.local
        checks: dict[str, Any] = {}
        if local is not None:
            checks["local"] = "ready" if local.ready() else (local.error or "loading")
        for backend in self.registry.backends:
            if backend is not local:
                checks[backend.name] = "ready" if backend.ready() else "not started"
        return all(v == "ready" for v in checks.values()), checks


def build_app(settings: Settings, registry: Registry | None = None) -> Starlette:
    rt = Runtime(settings, registry)
    openai = OpenAIService(rt)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> Response:
        ok, checks = rt.ready()
        return json_response({"ready": ok, "checks": checks}, 200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def schema(request: Request) -> Response:
        return json_response(openapi_schema())

    routes = [
        Route("/v1/chat/completions", openai.chat, methods=["POST"]),
        Route("/v1/completions", openai.completions, methods=["POST"]),
        Route("/v1/models", rt.auth.guard(openai.models), methods=["GET"]),
        Route("/v1/models/{model:path}", rt.auth.guard(openai.model), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", schema, methods=["GET"]),
        Route("/v1/usage", rt.auth.guard(usage_endpoint(rt)), methods=["GET"]),
        Route("/v1/feedback", rt.auth.guard(feedback_endpoint(rt)), methods=["POST"]),
        *KeyAdmin(rt).routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ThriftyError: _thrifty_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.runtime = rt
    return app


async def _thrifty_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ThriftyError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"{request.method} is not allowed here"))
    if exc.status_code == 404:
        return error_response(NotFound(f"no route {request.url.path}"))
    err = ThriftyError(str(exc.detail))
    return Response(err.body(), exc.status_code, media_type="application/json")


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s", request.url.path)
    return error_response(ThriftyError("internal error; see the server log"))
