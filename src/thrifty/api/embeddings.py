"""`POST /v1/embeddings`: OpenAI's embeddings, through the same gateway as chat.

`model: local` is the local embedder (the semantic cache's multilingual encoder, in-process);
an upstream alias passes the request to that upstream's embedder. Keys, limits, privacy (text
with personal data bound for a cloud embedder is embedded locally, or refused), the cache and
metering apply as to any request.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from thrifty.api.auth import caller_fields
from thrifty.api.body import read_json_object, validation_error
from thrifty.api.openai import answer_headers, refused, route_headers
from thrifty.api.protocol import EmbeddingRequest
from thrifty.api.responses import error_response, json_response
from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest, ThriftyError

if TYPE_CHECKING:
    from thrifty.api.app import Runtime


class EmbeddingService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.limit = runtime.settings.limits.max_body_bytes

    async def embeddings(self, request: Request) -> Response:
        started = time.perf_counter()
        key = None
        body: dict[str, Any] | None = None
        gateway = self.rt.gateway
        try:
            key = self.rt.auth.authenticate(request.headers)
            body = await read_json_object(request, self.limit)
            try:
                EmbeddingRequest.model_validate(body)
            except ValidationError as exc:
                raise validation_error(exc) from None
            if body.get("stream"):
                raise InvalidRequest("embeddings are not streamed", param="stream")
            model = str(body.get("model") or "local")
            if model in self.rt.router.models:
                raise InvalidRequest(
                    f"`{model}` routes chat requests; name an embedding model (local, or an "
                    "upstream embedder)",
                    param="model",
                )
        except ThriftyError as exc:
            ctx = refused(gateway, "embeddings", body, key, started, exc)
            return error_response(exc, route_headers(ctx))
        ctx = RequestContext(
            "embeddings",
            body,
            model,
            False,
            started=started,
            request_headers=request.headers,
            **caller_fields(key),
        )
        try:
            answer = await gateway.handle(ctx)
        except ThriftyError as exc:
            headers = answer_headers(ctx)
            return error_response(exc, headers)
        headers = answer_headers(ctx)
        return json_response(answer, headers=headers)
