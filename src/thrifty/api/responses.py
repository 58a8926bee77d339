"""HTTP responses: JSON, OpenAI error envelopes, and server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from thrifty.errors import ThriftyError


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


def error_response(exc: ThriftyError, headers: dict[str, str] | None = None) -> Response:
    merged = {**(headers or {}), **exc.headers}
    return Response(exc.body(), exc.status, merged, media_type="application/json")


class SSEResponse:
    """Stream batches of event payloads as `data: …` events, each batch in one write, then
    `data: [DONE]`; stop producing as soon as the client goes away.

    uvicorn's `send` silently drops bytes for a disconnected client, so a watcher waits on
    `receive` for `http.disconnect` and cancels the producer: a local model must not keep
    generating for nobody.
    """

    def __init__(
        self,
        events: AsyncIterator[list[bytes]],
        headers: dict[str, str],
        on_close: Callable[[bool], None],
        *,
        framed: bool = False,  # the payloads are whole SSE events already; no [DONE] at the end
    ) -> None:
        self.events = events
        self.framed = framed
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        self.headers += [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.on_close = on_close  # called once with disconnected=True/False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.current_task()
        disconnected = False
        finished = False

        async def watch() -> None:
            nonlocal disconnected
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished and producer is not None:
                        disconnected = True
                        producer.cancel()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            async for batch in self.events:
                if self.framed:
                    body = b"".join(batch)
                else:
                    body = b"".join([_event(payload) for payload in batch])
                await send({"type": "http.response.body", "body": body, "more_body": True})
            finished = True
            end = b"" if self.framed else SSE_DONE
            await send({"type": "http.response.body", "body": end, "more_body": False})
        except asyncio.CancelledError:
            if not disconnected:
                raise
            if producer is not None:
                producer.uncancel()  # we cancelled ourselves: the client left, nothing to raise
        finally:
            finished = True
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            with contextlib.suppress(Exception):
                await self.events.aclose()  # type: ignore[attr-defined]
            self.on_close(disconnected)


SSE_DONE = b"data: [DONE]\n\n"


def _event(payload: bytes) -> bytes:
    # an upstream's event may hold newlines (JSON over several data: lines): each line its own
    return b"data: " + payload.replace(b"\n", b"\ndata: ") + b"\n\n"
