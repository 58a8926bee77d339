"""The OpenAI-compatible endpoints: parse and validate, hand to the gateway, shape the answer.

Every answer, error or not, carries `x-thrifty-request-id`, `x-thrifty-route`,
`x-thrifty-reason` and (when known before the first byte) `x-thrifty-cost-usd`. A streamed
answer's cost is known only at its end: it rides in the final usage chunk as `x_thrifty`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from thrifty.api.auth import caller_fields
from thrifty.api.protocol import ChatCompletionRequest, CompletionRequest
from thrifty.api.responses import SSE_DONE, SSEResponse, error_response, json_response, sse_event
from thrifty.backends import Reply, StreamStats
from thrifty.backends.base import Endpoint
from thrifty.context import RequestContext
from thrifty.costs.money import format_nanos
from thrifty.errors import InvalidRequest, ModelNotFound, PayloadTooLarge, ThriftyError
from thrifty.gateway.privacy import StreamRestorer, unmask_payload

if TYPE_CHECKING:
    from thrifty.api.app import Runtime

logger = logging.getLogger(__name__)

_SCHEMAS: dict[Endpoint, type[BaseModel]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
}


def route_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {
        "x-thrifty-request-id": ctx.id,
        "x-thrifty-route": ctx.route,
        "x-thrifty-reason": ctx.reason,
    }
    if ctx.cache:
        headers["x-thrifty-cache"] = ctx.cache
    if ctx.variant:
        headers["x-thrifty-variant"] = ctx.variant
    headers.update(ctx.response_headers)
    return headers


def cost_header(ctx: RequestContext) -> str:
    return "unknown" if ctx.cost_nanos is None else format_nanos(ctx.cost_nanos)


def validation_error(exc: ValidationError) -> InvalidRequest:
    first = exc.errors(include_url=False)[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    return InvalidRequest(f"{param}: {message}" if param else message, param=param)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, at most `limit` bytes (checked before reading when declared)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is over {limit} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return data


class OpenAIService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
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
            asked = body.get("model") if body is not None else None
            ctx = RequestContext(
                endpoint, {}, str(asked or ""), False, started=started, **caller_fields(key)
            )
            return self._fail(ctx, exc)
        ctx = RequestContext(
            endpoint,
            body,
            body.get("model") or self.default_model,
            bool(body.get("stream")),
            started=started,
            request_headers=request.headers,
            **caller_fields(key),
        )
        if ctx.stream:
            return await self._stream(ctx)
        try:
            reply = await self.rt.gateway.complete(ctx)
            self.rt.moderation.check_answer(ctx, reply.payload)  # masks in place, or refuses
        except ThriftyError as exc:
            return self._fail(ctx, exc)
        except Exception:
            return self._fail(ctx, _internal(ctx))
        self.rt.gateway.finish(ctx)
        if ctx.pii_mapping:
            unmask_payload(reply.payload, ctx.pii_mapping)
        headers = route_headers(ctx)
        headers["x-thrifty-cost-usd"] = cost_header(ctx)
        return json_response(reply.payload, headers=headers)

    def _fail(self, ctx: RequestContext, exc: ThriftyError) -> Response:
        ctx.status = exc.status
        ctx.error_code = exc.code
        self.rt.gateway.finish(ctx)
        headers = route_headers(ctx)
        headers["x-thrifty-cost-usd"] = cost_header(ctx)
        return error_response(exc, headers)

    async def _stream(self, ctx: RequestContext) -> Response:
        stats = StreamStats()
        try:
            opened = await self.rt.gateway.stream(ctx, stats)
        except ThriftyError as exc:
            return self._fail(ctx, exc)
        except Exception:
            return self._fail(ctx, _internal(ctx))
        if isinstance(opened, Reply):
            events = _replay(opened)
        else:
            first, rest = opened
            events = _chain(first, rest)
        wants_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))

        def on_close(disconnected: bool) -> None:
            if disconnected:
                ctx.status, ctx.error_code = 499, "client_disconnected"
            self._settle_stream(ctx, stats)
            self.rt.gateway.finish(ctx)

        return SSEResponse(self._sse(ctx, stats, events, wants_usage), route_headers(ctx), on_close)  # type: ignore[return-value]

    def _settle_stream(self, ctx: RequestContext, stats: StreamStats) -> None:
        ctx.usage = ctx.usage or stats.usage
        if ctx.first_token_at is None:
            ctx.first_token_at = stats.first_chunk_at

    async def _sse(
        self,
        ctx: RequestContext,
        stats: StreamStats,
        events: AsyncIterator[list[bytes]],
        wants_usage: bool,
    ) -> AsyncIterator[bytes]:
        """The client's SSE body: each batch of upstream events leaves in one write."""
        usage_chunk: bytes | None = None
        restorer = StreamRestorer(ctx.pii_mapping) if ctx.pii_mapping else None
        capture = StreamCapture() if ctx.capture_stream else None
        guard = self.rt.moderation.stream_guard(ctx)  # None: no word list watches answers
        out: list[bytes] = []
        try:
            async for batch in events:
                for payload in batch:
                    if b'"choices":[]' in payload and b'"usage":{' in payload:
                        usage_chunk = payload  # held back: the cost goes into it at the end
                        continue
                    if restorer is not None or capture is not None or guard is not None:
                        chunk = orjson.loads(payload)
                        if restorer is not None:
                            chunk = restorer.chunk(chunk)
                        if guard is not None:
                            chunk = guard.chunk(chunk)  # masks, or raises on a blocked term
                        if restorer is not None or guard is not None:
                            payload = orjson.dumps(chunk)
                        if capture is not None:
                            capture.add(chunk)
                    out.append(sse_event(payload))
                if out:
                    yield b"".join(out)
                    out.clear()
            tail = guard.close() if guard is not None else None
            if tail is not None:  # text held back from a choice that never said it finished
                if capture is not None:
                    capture.add(tail)
                yield sse_event(orjson.dumps(tail))
        except Exception as exc:  # mid-stream: headers are gone, say it in the stream
            error = exc if isinstance(exc, ThriftyError) else _internal(ctx)
            ctx.status, ctx.error_code = error.status, error.code
            yield b"".join(out) + sse_event(error.body()) + SSE_DONE
            return
        finally:
            await _close(events)  # an upstream stream we stopped reading is closed now, not by GC
        self._settle_stream(ctx, stats)
        if capture is not None:
            ctx.reply = capture.payload(ctx.usage)
        self.rt.gateway.settle(ctx)
        if wants_usage and usage_chunk is not None:
            chunk = orjson.loads(usage_chunk)
            chunk["x_thrifty"] = {
                "request_id": ctx.id,
                "route": ctx.route,
                "reason": ctx.reason,
                "cost_usd": cost_header(ctx),
            }
            yield sse_event(orjson.dumps(chunk))
        yield SSE_DONE

    async def models(self, request: Request) -> Response:
        return json_response({"object": "list", "data": self.rt.model_cards()})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        for card in self.rt.model_cards():
            if card["id"] == name:
                return json_response(card)
        return error_response(ModelNotFound(f"The model `{name}` does not exist", param="model"))


async def _close(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def _internal(ctx: RequestContext) -> ThriftyError:
    """A bug of ours: log it with its traceback, tell the client in OpenAI's shape."""
    logger.exception("request %s failed inside the gateway", ctx.id)
    return ThriftyError(f"internal error (request {ctx.id}); see the server log")


async def _chain(
    first: list[bytes] | None, rest: AsyncIterator[list[bytes]]
) -> AsyncIterator[list[bytes]]:
    try:
        if first is not None:
            yield first
        async for batch in rest:
            yield batch
    finally:
        await _close(rest)


async def _replay(reply: Reply) -> AsyncIterator[list[bytes]]:
    """A whole answer (from the cache) as the chunks a streaming client expects, in one batch."""
    payload = reply.payload
    base = {k: payload.get(k) for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    chunks: list[dict[str, Any]] = []
    for i, choice in enumerate(payload.get("choices") or []):
        message = choice.get("message") or {}
        delta = {"role": "assistant", "content": message.get("content", choice.get("text", ""))}
        finish = choice.get("finish_reason")
        chunks.append({**base, "choices": [{"index": i, "delta": delta, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": i, "delta": {}, "finish_reason": finish}]})
    if payload.get("usage"):
        chunks.append({**base, "choices": [], "usage": payload["usage"]})
    yield [orjson.dumps(chunk) for chunk in chunks]


class StreamCapture:
    """Reassemble a streamed answer into the whole-answer shape (for the cache to store)."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, str | None] = {}

    def add(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model")}
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if text:
                self.texts.setdefault(index, []).append(text)
            if choice.get("finish_reason") is not None:
                self.finish[index] = choice["finish_reason"]

    def payload(self, usage: dict[str, Any] | None) -> dict[str, Any]:
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": "".join(self.texts.get(i, []))},
                "finish_reason": self.finish.get(i),
            }
            for i in sorted(set(self.texts) | set(self.finish))
        ]
        return {**self.head, "object": "chat.completion", "choices": choices, "usage": usage}
