"""Any OpenAI-compatible HTTP server as a backend: DeepSeek, vLLM, SGLang, Ollama, llama-server.

One attempt per call: retries, fallback and circuit breaking belong to the gateway's call stage,
which needs to know only whether an error is worth retrying (`UpstreamError.retryable`) and how
long the upstream asked us to wait (`retry_after`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from thrifty.backends.base import PATHS, Endpoint, Reply, StreamStats
from thrifty.backends.http import BadResponse, Connection, Disconnected, Origin
from thrifty.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ThriftyError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from thrifty.sse import DONE, iter_events

logger = logging.getLogger(__name__)

_CONTEXT_HINTS = ("context length", "context size", "context_length", "maximum context", "too long")


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def upstream_failure(name: str, status: int, body: bytes, headers: Any = None) -> ThriftyError:
    """Map an upstream's HTTP error to ours: the client's fault stays 4xx, ours becomes 5xx."""
    try:
        err = orjson.loads(body).get("error") or {}
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    message = str(message or body[:200].decode("utf-8", "replace") or f"HTTP {status}")
    if status in (400, 413, 422):
        if any(h in message.lower() for h in _CONTEXT_HINTS):
            return ContextLengthExceeded(message, param="messages")
        return InvalidRequest(message)
    after = _retry_after(headers)
    if status == 429:
        return UpstreamRateLimited(
            f"upstream {name} is rate limiting: {message}",
            retryable=True,
            retry_after=after,
            headers={"retry-after": str(int(after + 0.999))} if after is not None else None,
        )
    if status in (401, 403):
        return UpstreamError(f"upstream {name} rejected thrifty's credentials (HTTP {status})")
    if status == 404:
        return UpstreamError(f"upstream {name} answered 404: {message}")
    return UpstreamError(
        f"upstream {name} failed with HTTP {status}: {message}",
        retryable=status >= 500,
        retry_after=after,
    )


def wire_failure(name: str, exc: BaseException, streamed: bool = False) -> UpstreamError:
    """Our error for a call that failed on the wire (`thrifty.backends.http`'s errors, timeouts
    and socket errors); `streamed`: part of a stream had already gone on to the client.

    A timeout is checked first: `TimeoutError` is an `OSError` too, and a deadline that ran out
    is not an unreachable upstream (504, and no retry: the deadline is spent)."""
    if isinstance(exc, TimeoutError):
        return _timed_out(name)
    if isinstance(exc, BadResponse):
        return UpstreamError(f"upstream {name} failed: {exc}", retryable=not streamed)
    if streamed:
        return _cut(name)
    if isinstance(exc, Disconnected) and exc.answered:  # a whole body cut short of its end
        return UpstreamError(
            f"upstream {name} closed the connection before its answer ended", retryable=True
        )
    return _unreachable(name, exc)


def _unreachable(name: str, exc: BaseException) -> UpstreamError:
    return UpstreamError(f"upstream {name} is unreachable: {type(exc).__name__}", retryable=True)


def _timed_out(name: str) -> UpstreamTimeout:
    return UpstreamTimeout(f"upstream {name} did not answer in time")


class OpenAICompatBackend:
    """A pooled HTTP client to one OpenAI-compatible base URL."""

    kind = "upstream"

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 10.0,
        timeout_s: float = 300.0,
        stream_idle_timeout_s: float = 60.0,
        reuse_connections: bool = True,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        # A whole answer has a deadline (a reply dripping a byte at a time must not hold the
        # request past it); a stream has a longest gap between events instead, since a long
        # answer streams for as long as it needs.
        self.timeout_s = timeout_s  # a stream's first event is due within it too
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reuse_connections = reuse_connections
        self._origin: Origin | None = None
        self._heads: dict[str, bytes] = {}  # request line and headers, per path
        self.in_flight = 0

    async def start(self) -> None:
        if self._origin is None:
            self._origin = Origin(
                self.base_url,
                connect_timeout_s=self.connect_timeout_s,
                reuse=self.reuse_connections,
            )
            self._heads.clear()

    async def close(self) -> None:
        if self._origin is not None:
            await self._origin.close()
            self._origin = None

    def ready(self) -> bool:
        return self._origin is not None

    def load(self) -> int:
        return 0

    def saturated(self) -> bool:
        return False

    async def post(self, path: str, data: bytes) -> Connection:
        """POST `data` to `path` below the base URL; the response's headers are in. The caller
        reads its body and releases the connection."""
        origin = self._origin
        if origin is None:
            raise UpstreamError(f"upstream {self.name} is not started")
        head = self._heads.get(path)
        if head is None:
            head = self._heads[path] = origin.head(path, self._headers)
        return await origin.post(head, data)

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        raw = await self.fetch(PATHS[endpoint], orjson.dumps(body))
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"upstream {self.name} sent a body that is not JSON", retryable=True
            ) from None
        problem = completion_problem(payload)
        if problem is not None:
            raise UpstreamError(f"upstream {self.name} sent {problem}", retryable=True)
        return Reply(payload)

    async def fetch(self, path: str, data: bytes) -> bytes:
        """A whole answer's body, within the deadline; an HTTP error raised as ours."""
        self.in_flight += 1
        conn = None
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await self.post(path, data)
                raw = await conn.read()
            if conn.status >= 400:
                raise upstream_failure(self.name, conn.status, raw, conn.headers)
            return raw
        except (OSError, BadResponse) as exc:
            raise wire_failure(self.name, exc) from None
        finally:
            self.in_flight -= 1
            if conn is not None:
                conn.release()

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncGenerator[list[bytes], None]:
        self.in_flight += 1
        # until the first event, the whole-answer deadline holds (a stream that never starts
        # falls back in time); after it, only the gaps between events are bounded
        deadline = asyncio.timeout(self.timeout_s)
        conn = None
        try:
            async with deadline:
                conn = await self.post(PATHS[endpoint], orjson.dumps(body))
                if conn.status >= 400:
                    raise upstream_failure(self.name, conn.status, await conn.read(), conn.headers)
                async for events in iter_events(conn.chunks(self.stream_idle_timeout_s)):
                    batch: list[bytes] = []
                    for data in events:
                        if data == DONE:
                            if batch:
                                yield batch
                            # read to the end, so the connection goes back to the pool
                            await conn.read()
                            return
                        if b'"error"' in data:
                            error = _stream_error(self.name, data)
                            if error is not None:
                                raise error
                        # every event until the first reaches the client is checked whole;
                        # after it, one shaped like an object is left to the gateway, which
                        # parses every event it has to look into and checks it the same way
                        problem = (
                            event_problem(data)
                            if not stats.chunks or data[:1] != b"{" or data[-1:] != b"}"
                            else None
                        )
                        if problem is not None:
                            # before the first byte reached the client this is a failure the
                            # next target can make good; after it, the stream ends in an error
                            raise UpstreamError(
                                f"upstream {self.name} sent {problem}", retryable=not stats.chunks
                            )
                        batch.append(data)
                    if batch:
                        if stats.first_chunk_at is None:
                            stats.first_chunk_at = time.perf_counter()
                            deadline.reschedule(None)
                        stats.chunks += len(batch)
                        yield batch
                raise _cut(self.name)
        except (OSError, BadResponse) as exc:
            raise wire_failure(self.name, exc, streamed=bool(stats.chunks)) from None
        finally:
            self.in_flight -= 1
            if conn is not None:
                conn.release()


def completion_problem(payload: Any) -> str | None:
    """What is wrong with a whole answer (a completion or embeddings), or None."""
    if not isinstance(payload, dict):
        return "JSON that is not an object"
    if "data" in payload and "choices" not in payload:
        return None if isinstance(payload["data"], list) else "embeddings without a data list"
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return "JSON that is not a completion (no choices)"
    for choice in choices:
        if not isinstance(choice, dict):
            return "a completion whose choices are not objects"
        message = choice.get("message")
        if message is not None and not isinstance(message, dict):
            return "a completion whose message is not an object"
    usage = payload.get("usage")
    if usage is not None and not isinstance(usage, dict):
        return "a completion whose usage is not an object"
    return None


def event_problem(data: bytes) -> str | None:
    """What is wrong with one streamed event, or None."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return "a stream event that is not JSON"
    if not isinstance(event, dict):
        return "a stream event that is not an object"
    choices = event.get("choices")
    if choices is not None and (
        not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices)
    ):
        return "a stream event whose choices are not objects"
    return None


def _stream_error(name: str, data: bytes) -> UpstreamError | None:
    """The error an event reports (`{"error": …}` with no choices), else None."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # not an error object; the gateway says what is wrong with it
    if not isinstance(event, dict) or "error" not in event or event.get("choices"):
        return None
    error = event["error"]
    message = error.get("message", "") if isinstance(error, dict) else str(error or "")
    return UpstreamError(f"upstream {name} failed mid-stream: {message}".rstrip(": "))


def _cut(name: str) -> UpstreamError:
    return UpstreamError(f"upstream {name} closed the stream before it finished", retryable=True)
