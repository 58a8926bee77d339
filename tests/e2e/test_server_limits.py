"""Slow and oversized clients against a real `thrifty serve`, over raw sockets.

A client that never finishes its headers, or stops sending its body, is answered 408 and closed;
a chunked body past the cap is answered 413 before it ends; past the connection cap, 503; a
request head past its cap, 431; a request that is not HTTP, 400 (in OpenAI's shape, both).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from support import ThriftyServer

pytestmark = pytest.mark.slow

LIMITS = {
    "header_timeout_s": 1.0,
    "body_timeout_s": 1.0,
    "max_body_bytes": 10_000,
    "max_connections": 4,
    "max_header_bytes": 8192,
}


@pytest.fixture(scope="module")
def server() -> Iterator[ThriftyServer]:
    config = {"local": {"enabled": False}, "limits": LIMITS}
    with ThriftyServer(config=config) as thrifty:
        yield thrifty


def connect(server: ThriftyServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (or 10 s pass)."""
    chunks = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def test_a_connection_that_sends_nothing_is_closed_with_408(server: ThriftyServer) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        reply = read_all(sock)
    assert status(reply) == 408 and b"request_timeout" in reply
    assert time.monotonic() - started < 9  # closed by the server, not by our read deadline


def test_headers_that_never_finish_get_408(server: ThriftyServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        sock.sendall(b"X-Slow: 1\r\n")  # a trickle of bytes does not keep it alive
        reply = read_all(sock)
    assert status(reply) == 408


def test_a_body_that_stops_arriving_gets_408(server: ThriftyServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 200\r\n\r\n" + b'{"model": "local", '
        )
        reply = read_all(sock)
    assert status(reply) == 408 and b"stopped arriving" in reply


def test_a_chunked_body_past_the_cap_is_413_before_it_ends(server: ThriftyServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        piece = b" " * 1000
        for _ in range(15):  # 15 kB of a body that never ends (no terminating chunk)
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        reply = read_all(sock)
    assert status(reply) == 413 and b"over 10000 bytes" in reply


def test_past_the_connection_cap_requests_get_503(server: ThriftyServer) -> None:
    idle = [connect(server) for _ in range(LIMITS["max_connections"])]  # type: ignore[arg-type]
    try:
        time.sleep(0.2)
        with connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n")
            reply = read_all(sock)
        assert status(reply) == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    with connect(server) as sock:  # and once they are gone, requests are served again
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n")
        assert status(read_all(sock)) == 200


def test_a_busy_kept_alive_connection_outlives_the_header_timeout(server: ThriftyServer) -> None:
    """The header timer times headers only: a connection used for longer than the timeout,
    with short pauses between its requests, never gets a 408."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    statuses = []
    with connect(server) as sock:
        until = time.monotonic() + 2.5  # 2.5 header timeouts
        while time.monotonic() < until:
            sock.sendall(request)
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, f"closed after {statuses}"
                reply += chunk
            statuses.append(status(reply))
            time.sleep(0.3)  # idle between requests, as a pooled client is
    assert len(statuses) >= 6 and set(statuses) == {200}


def body_of(reply: bytes) -> dict:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize("pieces", [1, 40])  # in one piece, or trickled in many
def test_a_request_head_past_the_cap_is_431(server: ThriftyServer, pieces: int) -> None:
    # 8192 + 50 bytes, unfinished: only the last piece crosses the cap, so nothing is still
    # being sent when the server answers and closes
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
    head += b"a" * (8192 + 50 - len(head))
    step = -(-len(head) // pieces)
    with connect(server) as sock:
        for at in range(0, len(head), step):
            sock.sendall(head[at : at + step])
            time.sleep(0.005 if pieces > 1 else 0)
        reply = read_all(sock)
    assert status(reply) == 431, reply[:300]
    assert body_of(reply)["error"]["code"] == "request_header_too_large"
    with connect(server) as sock:  # a head under the cap is served
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 7000 + b"\r\n"
                     b"connection: close\r\n\r\n")  # fmt: skip
        assert status(read_all(sock)) == 200


@pytest.mark.parametrize(
    "request_",
    [
        b"GET /healthz\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
    ],
)
def test_a_request_that_is_not_http_is_400_in_openai_shape(
    server: ThriftyServer, request_: bytes
) -> None:
    with connect(server) as sock:
        sock.sendall(request_)
        reply = read_all(sock)
    assert status(reply) == 400, reply[:300]
    assert body_of(reply)["error"]["code"] == "invalid_http"
