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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from thrifty import __version__
from thrifty.api.admin import KeyAdmin
from thrifty.api.anthropic import AnthropicService
from thrifty.api.auth import Authenticator
from thrifty.api.batches import BatchService
from thrifty.api.console import console_routes
from thrifty.api.embeddings import EmbeddingService
from thrifty.api.feedback import feedback_endpoint
from thrifty.api.openai import OpenAIService
from thrifty.api.openapi import openapi_schema
from thrifty.api.responses import error_response, json_response
from thrifty.api.usage import usage_endpoint
from thrifty.backends import Registry, build_registry
from thrifty.config import Settings
from thrifty.errors import InvalidRequest, MethodNotAllowed, NotFound, ThriftyError
from thrifty.gateway.build import build_gateway
from thrifty.gateway.metrics import Metrics
from thrifty.store.keys import KeyStore

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


class Runtime:
    """Everything one gateway process holds: settings, backends, the gateway, keys, metrics."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or build_registry(settings)
        self.metrics = Metrics()
        self.parts = parts = build_gateway(settings, self.registry, self.metrics)
        self.gateway = parts.gateway
        self.router = parts.router
        self.moderation = parts.moderation
        self.cache = parts.cache
        self.request_log = parts.request_log
        self.audit = parts.audit
        self.review = parts.review
        self.keys = KeyStore(settings.database_url)
        self.auth = Authenticator(self.keys, settings.auth, settings.host)
        self.metrics.on_collect(self._refresh_gauges)
        self._gauges: asyncio.Task[None] | None = None
        self.started_at = int(time.time())

    def _refresh_gauges(self) -> None:
        local = self.registry.local
        if local is not None:
            self.metrics.queue_depth.set(local.load())
            self.metrics.in_flight.set(local.in_flight)
        for name, breaker in self.parts.breakers.items():
            self.metrics.breaker.labels(name).set(int(breaker.state))
        for writer in self.parts.writers:
            self.metrics.store_buffered.labels(writer.name).set(writer.buffered)

    async def start(self) -> None:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.keys.open()
        self.auth.open()  # refuses a keyless start on a non-loopback address, before anything runs
        self.parts.open()
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
        await self.parts.close()
        self.auth.close()
        self.keys.close()

    def model_cards(self) -> list[dict[str, Any]]:
        """`/v1/models`: router names, experiment names, then every model name of a target."""
        owners = dict.fromkeys(sorted(self.router.models), "thrifty-router")
        owners.update(dict.fromkeys(sorted(self.settings.experiments), "thrifty-experiment"))
        return self.registry.model_cards(self.started_at, owners)

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
    batches = BatchService(rt) if settings.batches.enabled else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        if batches is not None:
            await batches.start()
        try:
            yield
        finally:
            if batches is not None:
                await batches.stop()
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

    model_calls: dict[str, Handler] = {
        "/v1/chat/completions": openai.chat,
        "/v1/completions": openai.completions,
        "/v1/messages": AnthropicService(rt).messages,
        "/v1/embeddings": EmbeddingService(rt).embeddings,
    }
    routes = [
        *(Route(path, handler, methods=["POST"]) for path, handler in model_calls.items()),
        Route("/v1/models", rt.auth.guard(openai.models), methods=["GET"]),
        Route("/v1/models/{model:path}", rt.auth.guard(openai.model), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", schema, methods=["GET"]),
        Route("/v1/usage", rt.auth.guard(usage_endpoint(rt)), methods=["GET"]),
        Route("/v1/feedback", rt.auth.guard(feedback_endpoint(rt)), methods=["POST"]),
        *KeyAdmin(rt).routes(),
        *console_routes(rt),
        *(batches.routes() if batches is not None else []),
    ]
    app = App(
        model_calls,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ThriftyError: _thrifty_error,
            HTTPException: _http_error,
            ClientDisconnect: _unexpected,
            Exception: _unexpected,
        },
    )
    app.state.runtime = rt
    return app


class App(Starlette):
    """Starlette, with the model calls dispatched before its middleware and router.

    Every call to a model comes through one of four POST paths, and Starlette's layers
    (error middleware, exception middleware, router) cost about as much CPU as the rest of the
    gateway's own work on such a request. The handlers catch their own errors, so a dict lookup
    does the routing; anything else (a GET on those paths, every other path) goes the usual way.
    """

    def __init__(self, model_calls: dict[str, Handler], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_calls = model_calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            handler = self.model_calls.get(scope["path"])
            if handler is not None:
                scope["app"] = self
                request = Request(scope, receive)
                try:
                    response = await handler(request)
                except ThriftyError as exc:
                    response = error_response(exc)
                except Exception as exc:
                    response = await _unexpected(request, exc)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _thrifty_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ThriftyError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(MethodNotAllowed(f"{request.method} is not allowed here"))
    if exc.status_code == 404:
        return error_response(NotFound(f"no route {request.url.path}"))
    # e.g. a 400 for a multipart body Starlette cannot parse: the client's error, so its type
    err = (InvalidRequest if exc.status_code < 500 else ThriftyError)(str(exc.detail))
    return Response(err.body(), exc.status_code, media_type="application/json")


async def _unexpected(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # the body ended early: the client's doing, not ours
        logger.info(
            "%s %s: the client left before its body ended", request.method, request.url.path
        )
        return error_response(InvalidRequest("the request body ended before it was complete"))
    logger.exception("unhandled error on %s", request.url.path)
    return error_response(ThriftyError("internal error; see the server log"))
