"""`POST /v1/messages`: Anthropic's Messages API, answered by the same gateway as chat.

The request is translated into an OpenAI chat request (`thrifty.backends.anthropic_format`) and
goes through every stage (keys, limits, privacy, routing, cache, metering) like any other; the
answer comes back as an Anthropic message, or as Anthropic's stream events. Errors use
Anthropic's envelope (`{"type": "error", "error": {"type", "message"}}`), with the same status
codes, and the route headers ride along as on every thrifty answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from thrifty.api.auth import caller_fields
from thrifty.api.body import read_json_object, validation_error
from thrifty.api.openai import answer_headers, refused, route_headers
from thrifty.api.protocol import ChatCompletionRequest
from thrifty.api.responses import SSEResponse
from thrifty.backends.anthropic_format import EventStream, error_body, to_message, to_openai
from thrifty.context import RequestContext
from thrifty.errors import ThriftyError
from thrifty.gateway.pipeline import Stream

if TYPE_CHECKING:
    from thrifty.api.app import Runtime


# the OpenAI chat fields that `to_openai` fills from differently named Anthropic ones
_FIELDS = {"stop": "stop_sequences", "user": "metadata.user_id"}
_TOOL_FIELDS = {"parameters": "input_schema"}


def anthropic_param(param: str) -> str:
    """The Anthropic name of a field of the translated chat request (`tools.0.function.name`
    is `tools.0.name`), for errors found by validating that request."""
    parts = param.split(".")
    if len(parts) >= 4 and parts[0] == "tools" and parts[2] == "function":
        return ".".join(["tools", parts[1], _TOOL_FIELDS.get(parts[3], parts[3]), *parts[4:]])
    return ".".join([_FIELDS.get(parts[0], parts[0]), *parts[1:]])


def anthropic_error(exc: ThriftyError, headers: dict[str, str] | None = None) -> Response:
    # Anthropic's envelope has no `param`: the message names the field
    message = exc.message
    if exc.param and not message.startswith(exc.param):
        message = f"{exc.param}: {message}"
    body = orjson.dumps(error_body(exc.status, message))
    merged = {**(headers or {}), **exc.headers}
    return Response(body, exc.status, merged, media_type="application/json")


class AnthropicService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.limit = runtime.settings.limits.max_body_bytes
        self.default_model = runtime.settings.default_model

    async def messages(self, request: Request) -> Response:
        started = time.perf_counter()
        key = None
        body: dict[str, Any] | None = None
        gateway = self.rt.gateway
        try:
            key = self.rt.auth.authenticate(request.headers)
            body = await read_json_object(request, self.limit)
            chat = to_openai(body)
            try:
                ChatCompletionRequest.model_validate(chat)
            except ValidationError as exc:
                raise validation_error(exc, anthropic_param) from None
        except ThriftyError as exc:
            ctx = refused(gateway, "chat", body, key, started, exc)
            return anthropic_error(exc, route_headers(ctx))
        model = str(chat.get("model") or self.default_model)
        stream = bool(chat.get("stream"))
        if stream:
            chat["stream_options"] = {"include_usage": True}  # the closing event reports usage
        ctx = RequestContext(
            "chat",
            chat,
            model,
            stream,
            started=started,
            request_headers=request.headers,
            **caller_fields(key),
        )
        try:
            answer = await gateway.handle(ctx)
        except ThriftyError as exc:
            headers = answer_headers(ctx)
            return anthropic_error(exc, headers)
        if isinstance(answer, Stream):
            events = _events(answer, model)
            return SSEResponse(events, route_headers(ctx), answer.close, framed=True)  # type: ignore[return-value]
        headers = answer_headers(ctx)
        return Response(
            orjson.dumps(to_message(answer, model)), headers=headers, media_type="application/json"
        )


async def _events(answer: Stream, model: str) -> AsyncIterator[list[bytes]]:
    """The gateway's OpenAI chunks as Anthropic's SSE events (framed here, not by SSEResponse)."""
    events = EventStream(model)
    async for batch in answer.batches():
        out: list[bytes] = []
        for payload in batch:
            chunk = orjson.loads(payload)
            error = chunk.get("error") if isinstance(chunk, dict) else None
            if isinstance(error, dict) and not chunk.get("choices"):
                status = answer.ctx.status if answer.ctx.status >= 400 else 500
                out.append(events.error(status, str(error.get("message", ""))))
                yield out
                return
            out.extend(events.chunk(chunk))
        if out:
            yield out
    yield events.finish(answer.ctx.usage)
