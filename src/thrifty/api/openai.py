"""The OpenAI-compatible endpoints: parse, authenticate, hand to the gateway, render.

Every answer, error or not, carries `x-thrifty-request-id`, `x-thrifty-route`,
`x-thrifty-reason` and (for whole answers) `x-thrifty-cost-usd`. A streamed answer's cost is
known only at its end: it rides in the stream as `x_thrifty` (see `thrifty.gateway.pipeline`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from thrifty.api.auth import caller_fields
from thrifty.api.body import read_json_object, validation_error
from thrifty.api.protocol import ChatCompletionRequest, CompletionRequest
from thrifty.api.responses import SSEResponse, error_response, json_response
from thrifty.backends.base import Endpoint
from thrifty.context import KeyPolicy, RequestContext
from thrifty.errors import ModelNotFound, ThriftyError
from thrifty.gateway.pipeline import Gateway, Stream, cost_header

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

_SCHEMAS: dict[Endpoint, type[BaseModel]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
}


def route_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {
        "x-thrifty-request-id": ctx.id,
        "x-thrifty-route": ctx.route,
        "x-thrifty-reason": ctx.reason_header,
    }
    if ctx.cache:
        headers["x-thrifty-cache"] = ctx.cache
    if ctx.variant:
        headers["x-thrifty-variant"] = ctx.variant
    headers.update(ctx.response_headers)
    return headers


def answer_headers(ctx: RequestContext) -> dict[str, str]:
    """The route headers and, known by now, the request's cost."""
    headers = route_headers(ctx)
    headers["x-thrifty-cost-usd"] = cost_header(ctx)
    return headers


def refused(
    gateway: Gateway,
    endpoint: Endpoint,
    body: dict[str, Any] | None,
    key: KeyPolicy | None,
    started: float,
    exc: ThriftyError,
) -> RequestContext:
    """The context of a request refused before the stages (unreadable, unauthenticated),
    recorded as such."""
    asked = body.get("model") if body is not None else None
    ctx = RequestContext(
        endpoint, {}, str(asked or ""), False, started=started, **caller_fields(key)
    )
    gateway.refuse(ctx, exc)
    return ctx


class OpenAIService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.gateway = runtime.gateway
        self.limit = runtime.settings.limits.max_body_bytes
        self.default_model = runtime.settings.default_model

    async def chat(self, request: Request) -> Response:
        return await self._handle(request, "chat")

    async def completions(self, request: Request) -> Response:
        return await self._handle(request, "completions")

    async def _handle(self, request: Request, endpoint: Endpoint) -> Response:
        started = time.perf_counter()
        key = None
        body: dict[str, Any] | None = None
        try:
            key = self.rt.auth.authenticate(request.headers)  # 401 before anything else
            body = await read_json_object(request, self.limit)
            try:
                _SCHEMAS[endpoint].model_validate(body)
            except ValidationError as exc:
                raise validation_error(exc) from None
        except ThriftyError as exc:
            ctx = refused(self.gateway, endpoint, body, key, started, exc)
            return error_response(exc, answer_headers(ctx))
        ctx = RequestContext(
            endpoint,
            body,
            body.get("model") or self.default_model,
            bool(body.get("stream")),
            started=started,
            request_headers=request.headers,
            **caller_fields(key),
        )
        try:
            answer = await self.gateway.handle(ctx)
        except ThriftyError as exc:
            return error_response(exc, answer_headers(ctx))
        if isinstance(answer, Stream):
            return SSEResponse(answer.batches(), route_headers(ctx), answer.close)  # type: ignore[return-value]
        return json_response(answer, headers=answer_headers(ctx))

    def _cards(self, request: Request) -> list[dict[str, Any]]:
        """The model cards the caller's key may use (all of them for an unrestricted key)."""
        cards = self.rt.model_cards()
        key = getattr(request.state, "key", None)
        allowed = key.models if key is not None else None
        if allowed is None:
            return cards
        registry, routers = self.rt.registry, self.rt.router.models

        def usable(name: str) -> bool:
            target = registry.resolve(name)
            return (
                name in allowed
                or name in routers
                or (target is not None and target.route in allowed)
            )

        return [card for card in cards if usable(card["id"])]

    async def models(self, request: Request) -> Response:
        return json_response({"object": "list", "data": self._cards(request)})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        for card in self._cards(request):
            if card["id"] == name:
                return json_response(card)
        return error_response(ModelNotFound(f"The model `{name}` does not exist", param="model"))
