"""A lean HTTP/1.1 client for the upstream calls on the request path: keep-alive connections to
one origin (http or https), bodies whole or streamed, and nothing else.

Every request through thrifty to a model is one POST here, so its cost is the gateway's cost:
this client is an `asyncio.Protocol` around llhttp (`httptools`, which uvicorn already brings),
about a tenth of a general-purpose client's CPU per request (`benchmarks/gateway_overhead.py`).
What it leaves out on purpose: redirects, cookies, proxies, compression (we ask for identity),
request streaming, HTTP/2.

Connections are reused last-in first-out. A request written on a reused connection that the
server had closed meanwhile (its keep-alive ran out while the connection was idle here) fails
before a byte of answer arrives: it is written once more on a new connection, as a browser
would; any other failure is the caller's to handle (`Disconnected`, `ConnectFailed`, timeouts).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

_PAUSE_AT = 1 << 20  # unread body bytes at which a stream stops reading from the socket
_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:  # loading the CA store takes a while: once, when first needed
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class ConnectFailed(ConnectionError):
    """No connection to the origin (refused, unreachable, TLS handshake failed)."""


class Disconnected(ConnectionError):
    """The connection ended before the response did; `answered`: part of it had arrived."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


class BadResponse(Exception):
    """What came back is not HTTP/1.1."""


class Origin:
    """Keep-alive connections to the origin of `base_url`; `post` sends one request."""

    def __init__(
        self, base_url: str, *, connect_timeout_s: float = 10.0, reuse: bool = True
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.tls else 80)
        default = (self.port == 443) if self.tls else (self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default else f"{host}:{self.port}"
        self.prefix = url.path.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.reuse = reuse
        self.keepalive_s = 60.0  # an idle connection older than this is not reused
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()

    def head(self, path: str, headers: dict[str, str]) -> bytes:
        """The request line and fixed headers of POST `path` (below the base URL's path)."""
        lines = [f"POST {self.prefix}{path} HTTP/1.1", f"host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if not self.reuse:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\ncontent-length: ").encode("latin-1")

    async def post(self, head: bytes, body: bytes) -> Connection:
        """Send a request (`head` from `head()`); returns once the response's headers are in.
        The caller reads the body from the returned connection and then calls `release()`."""
        request = b"%s%d\r\n\r\n%s" % (head, len(body), body)
        conn = self._reused()
        if conn is not None:
            try:
                await conn.send(request)
                return conn
            except Disconnected as exc:  # closed while idle here: once more, on a new one
                if exc.answered:
                    raise
        conn = await self._connect()
        await conn.send(request)
        return conn

    def _reused(self) -> Connection | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: Connection(self),
                    self.host,
                    self.port,
                    ssl=_tls() if self.tls else None,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"no connection to {self.host_header} in time") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"no connection to {self.host_header}: {exc}") from None
        conn = cast(Connection, protocol)
        self._open.add(conn)
        return conn

    def _keep(self, conn: Connection) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.append(conn)

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._idle.clear()


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time: the response's status and
    headers, then its body (`read()` whole or `chunks()` as it arrives)."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False  # the whole response is in
        self.answered = False  # some of it is
        self.error: BaseException | None = None
        self._body: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._streaming = False  # a whole body is read at once: never paused
        self._waiter: asyncio.Future[None] | None = None
        self._headers_done = False
        self.keep_alive = False

    # -- protocol callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"the server's answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.origin._open.discard(self)
        if not self.complete and self.error is None:
            if self._headers_done and self._until_close():
                self.on_message_complete()  # a body that ends where the connection does
            else:
                self._fail(Disconnected("the server closed the connection", self.answered))

    def pause_writing(self) -> None:  # requests are small: the socket buffer takes them whole
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status < 200:  # 1xx: an interim answer; the real one follows
            self.headers = {}
            return
        self._headers_done = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once complete
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._streaming and self._buffered > _PAUSE_AT and not self._paused:
            self._paused = True
            assert self.transport is not None
            self.transport.pause_reading()  # until the reader takes what is here
        self._wake()

    def on_message_complete(self) -> None:
        if self._headers_done:
            self.complete = True
            self._wake()

    # -- the caller's side ----------------------------------------------------------------------

    def _until_close(self) -> bool:
        """No length and not chunked: the body runs to the end of the connection."""
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._wake()
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self.error is not None:
            raise self.error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self.error is not None:
            raise self.error

    async def send(self, request: bytes) -> None:
        if self.closed or self.transport is None:
            raise Disconnected("the connection is closed", False)
        self.transport.write(request)
        try:
            while not self._headers_done:
                await self._wait()
        except BaseException:  # cancelled or timed out too: the answer would arrive to no one
            self.close()
            raise

    async def read(self) -> bytes:
        """The whole body (or the rest of a stream's)."""
        self._streaming = False
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        while not self.complete:
            await self._wait()
        return self._take()

    async def chunks(self, idle_s: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; `idle_s`: the longest wait for more (TimeoutError)."""
        self._streaming = True
        while True:
            if self._body:
                yield self._take()
                continue  # more may have come while the reader had it
            if self.complete:
                return
            if idle_s is None:
                await self._wait()
            else:
                async with asyncio.timeout(idle_s):
                    await self._wait()

    def _take(self) -> bytes:
        data = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def release(self) -> None:
        """Done with this response: back to the pool when it was read whole and the server
        keeps the connection open; closed otherwise."""
        if (
            self.complete
            and not self.closed
            and self.origin.reuse
            and self.error is None
            and self.keep_alive
        ):
            self._reset()
            self.origin._keep(self)
        else:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.origin._open.discard(self)
