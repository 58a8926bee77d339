"""The upstream HTTP client (`thrifty.backends.http`) against a real socket server whose every
byte the test chooses: reuse, a connection closed while idle, bodies by length, chunked and
until close, big bodies whole and streamed, and the failures the call stage maps."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest

from thrifty.backends.http import ConnectFailed, Disconnected, Origin

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def in_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """A test written as a coroutine, run in a loop of its own."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(extra) + b"\r\n" + body


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        body = await read_request(reader)
        writer.write(ok(body))
        await writer.drain()


async def post(origin: Origin, body: bytes) -> tuple[int, bytes]:
    conn = await origin.post(origin.head("/chat/completions", {"x-test": "1"}), body)
    try:
        return conn.status, await conn.read()
    finally:
        conn.release()


@in_loop
async def test_keep_alive_connections_are_reused() -> None:
    server = Server(echo_forever)
    async with server as url:
        origin = Origin(url)
        for n in range(5):
            assert await post(origin, b'{"n":%d}' % n) == (200, b'{"n":%d}' % n)
        await origin.close()
    assert server.connections == 1


@in_loop
async def test_a_connection_the_server_closed_while_idle_is_replaced_unseen() -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(ok(body))  # says nothing of closing: the client keeps it
        await writer.drain()

    server = Server(one_then_close)
    async with server as url:
        origin = Origin(url)
        assert await post(origin, b"a") == (200, b"a")
        await asyncio.sleep(0.05)  # closed by the server while idle in the pool
        assert await post(origin, b"b") == (200, b"b")
        await origin.close()
    assert server.connections == 2


@in_loop
async def test_chunked_and_until_close_bodies() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nto the end")
        await writer.drain()

    async with Server(chunked) as url:
        origin = Origin(url)
        assert await post(origin, b"1") == (200, b"abcdefg")
        assert await post(origin, b"2") == (200, b"to the end")
        await origin.close()


@in_loop
async def test_a_big_body_whole_and_a_big_stream_read_slowly() -> None:
    big = bytes(range(256)) * 20_000  # 5 MB: past the point where a stream stops reading

    async def send_big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(ok(big))
            await writer.drain()

    async with Server(send_big) as url:
        origin = Origin(url)
        assert await post(origin, b"whole") == (200, big)
        conn = await origin.post(origin.head("/x", {}), b"stream")
        got = []
        async for piece in conn.chunks(idle_s=5):
            got.append(piece)
            await asyncio.sleep(0.001)  # a slow reader: the socket is paused, then resumed
        conn.release()
        assert b"".join(got) == big
        conn = await origin.post(origin.head("/x", {}), b"stream, then the rest whole")
        stream = conn.chunks(idle_s=5)
        first = await anext(stream)
        await asyncio.sleep(0.1)  # more than the pause threshold waits unread
        assert first + await conn.read() == big
        conn.release()
        await origin.close()


@in_loop
async def test_failures_say_whether_any_answer_had_arrived() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
        await writer.drain()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with Server(cut) as url:
        origin = Origin(url)
        with pytest.raises(Disconnected) as caught:
            await post(origin, b"x")
        assert caught.value.answered
    async with Server(refuse) as url:
        with pytest.raises(Disconnected) as caught:
            await post(Origin(url), b"x")
        assert not caught.value.answered
    closed = Server(echo_forever)
    async with closed as url:
        pass
    with pytest.raises(ConnectFailed):
        await post(Origin(url, connect_timeout_s=2), b"x")


@in_loop
async def test_an_idle_stream_times_out_and_its_connection_is_not_reused() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
            await writer.drain()

    server = Server(stall)
    async with server as url:
        origin = Origin(url)
        for _ in range(2):
            conn = await origin.post(origin.head("/x", {}), b"x")
            pieces: AsyncIterator[bytes] = conn.chunks(idle_s=0.2)
            assert await anext(pieces) == b"hi"
            with pytest.raises(TimeoutError):
                await anext(pieces)
            conn.release()
        await origin.close()
    assert server.connections == 2
