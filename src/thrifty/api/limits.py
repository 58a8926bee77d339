"""Server limits: slow clients, oversized bodies and connection floods cost nothing to refuse.

- **Header timeout** (`limits.header_timeout_s`): a connection that opened, or began a new
  request, must finish its request headers within this time, or it gets a 408 and is closed.
  uvicorn has no such limit (a client sending one header byte a minute holds a connection
  forever), so it lives in its HTTP protocol classes: `HttpToolsProtocol` and `H11Protocol`
  here subclass uvicorn's and arm a timer while no request is in progress.
- **Header size** (`limits.max_header_bytes`): a request head past it is a 431. h11 enforces
  it itself (uvicorn's `h11_max_incomplete_event_size`); httptools has no cap, so
  `HttpToolsProtocol` counts the bytes of a head as they arrive. A request uvicorn cannot parse
  at all is a 400; these answers, written before any app sees a request, are in OpenAI's shape.
- **Body timeout** (`limits.body_timeout_s`): the longest wait for the next piece of a request
  body. `ServerLimits`, an ASGI middleware, times each `receive()`; a stalled body is a 408.
- **Body cap**: `ServerLimits` counts body bytes as they arrive, chunked bodies included, and
  answers 413 once `limits.max_body_bytes` is passed (files uploads: `batches.max_file_bytes`),
  without reading the rest.
- **Connections** (`limits.max_connections`): uvicorn's `limit_concurrency`; past it, 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol as _H11Protocol

from thrifty.config import Settings
from thrifty.errors import InvalidRequest, PayloadTooLarge, ThriftyError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestTimeout(ThriftyError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class HeadTooLarge(ThriftyError):
    status = 431
    type = "invalid_request_error"
    code = "request_header_too_large"


_RAW_RESPONSE = (
    b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_TIMEOUT_BODY = (
    b'{"error":{"message":"the request headers did not arrive in time","type":'
    b'"invalid_request_error","param":null,"code":"request_timeout"}}'
)


class _HeaderTimeout:
    """Mixed into uvicorn's protocol classes: 408 and close a connection stuck in its headers."""

    header_timeout_s: float = 10.0  # set per process by `configure` (the serve command)
    max_header_bytes: int = 65536  # likewise (httptools: h11 has uvicorn's own cap)
    _header_timer: asyncio.TimerHandle | None = None
    _head_refused = False

    # uvicorn's attributes this relies on (both protocol classes have them)
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and not self._in_request():
            self._arm_header_timer()  # the first bytes of a request on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        if self._in_request():
            # the headers are in: the timer must not outlive them (armed when the connection
            # opened, it would otherwise fire between two later requests of a busy connection)
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _in_request(self) -> bool:
        """Headers complete and the answer not yet sent: the body timeout's business."""
        cycle = getattr(self, "cycle", None)
        return cycle is not None and not cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._in_request() or self.transport.is_closing():
            return
        self._answer(b"408 Request Timeout", _TIMEOUT_BODY)

    def send_400_response(self, msg: str) -> None:
        """A request uvicorn cannot parse (a malformed request line, header or chunk): a 400 in
        OpenAI's error shape rather than uvicorn's plain text; a head over the cap: a 431."""
        if self._head_refused:
            error: ThriftyError = HeadTooLarge(
                f"the request head is over {self.max_header_bytes} bytes (limits.max_header_bytes)"
            )
            self._answer(b"431 Request Header Fields Too Large", error.body())
            return
        error = InvalidRequest(f"{msg.rstrip('.')}: not valid HTTP/1.1", code="invalid_http")
        self._answer(b"400 Bad Request", error.body())

    def _answer(self, status: bytes, body: bytes) -> None:
        """Write a whole answer by hand and close: no request is in progress to answer it."""
        self.transport.write(_RAW_RESPONSE % (status, len(body), body))
        self.transport.close()


class H11Protocol(_HeaderTimeout, _H11Protocol):
    """uvicorn's h11 protocol with a header timeout."""


try:  # httptools is optional (uvicorn[standard])
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol

    class HttpToolsProtocol(_HeaderTimeout, _HttpToolsProtocol):
        """uvicorn's httptools protocol with a header timeout, and a cap on the request head:
        httptools has none (h11 has uvicorn's `h11_max_incomplete_event_size`), so a client
        could otherwise send headers until memory runs out."""

        _head_bytes = -1  # bytes received since the current request head began; -1: none
        _piece = 0  # the size of the piece being parsed

        def on_message_begin(self) -> None:
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            head, self._head_bytes = self._head_bytes + self._piece, -1
            # the exact size only when the bytes read could hold a head that large
            if head > self.max_header_bytes and self._head_size() > self.max_header_bytes:
                self._head_refused = True
                raise ValueError("request head too large")  # the parser stops: a 431, below
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            self._piece = len(data)
            super().data_received(data)
            if self._head_bytes >= 0:  # still in a head after this piece
                self._head_bytes += len(data)
                if self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
                    self._head_refused = True
                    self.send_400_response("")

        def _head_size(self) -> int:
            return len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers) + 16

except ImportError:  # pragma: no cover - httptools is installed with uvicorn[standard]
    pass


def uvicorn_options(settings: Settings, http: str) -> dict[str, Any]:
    """The uvicorn options that carry the limits, for `uvicorn.run` (by import path, so that
    worker processes find the protocol class too)."""
    name = "HttpToolsProtocol" if http == "httptools" else "H11Protocol"
    return {
        "http": f"thrifty.api.limits:{name}",
        "limit_concurrency": settings.limits.max_connections,
        "h11_max_incomplete_event_size": settings.limits.max_header_bytes,
    }


def configure(settings: Settings) -> None:
    """Set this process's header timeout and head cap (protocol objects are made by uvicorn,
    per connection)."""
    _HeaderTimeout.header_timeout_s = settings.limits.header_timeout_s
    _HeaderTimeout.max_header_bytes = settings.limits.max_header_bytes


class ServerLimits:
    """ASGI middleware: the body timeout and the body cap, enforced while the body is read."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.body_timeout_s = settings.limits.body_timeout_s
        self.max_body_bytes = settings.limits.max_body_bytes
        # a file upload is a multipart form around a file of up to max_file_bytes
        self.max_upload_bytes = settings.batches.max_file_bytes + 65536

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.max_upload_bytes if scope["path"] == "/v1/files" else self.max_body_bytes
        received = 0
        done = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, done
            if done:  # the body is read: what is left to wait for is a disconnect
                return await receive()
            try:
                async with asyncio.timeout(self.body_timeout_s):  # no task, unlike wait_for
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body stopped arriving ({self.body_timeout_s:g} s without data)"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise PayloadTooLarge(f"request body is over {cap} bytes")
                done = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except (RequestTimeout, PayloadTooLarge) as exc:
            if started:
                raise
            await _error(send, exc)


async def _error(send: Send, exc: ThriftyError) -> None:
    body = exc.body()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
