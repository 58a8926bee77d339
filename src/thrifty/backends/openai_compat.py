"""Any OpenAI-compatible HTTP server as a backend: DeepSeek, vLLM, SGLang, Ollama, llama-server.

One attempt per call: retries, fallback and circuit breaking belong to the gateway's call stage,
which needs to know only whether an error is worth retrying (`UpstreamError.retryable`) and how
long the upstream asked us to wait (`retry_after`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from thrifty.backends.base import PATHS, Endpoint, Reply, StreamStats
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
        connect_timeout_s: float = 5.0,
        timeout_s: float = 60.0,
        reuse_connections: bool = True,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self.reuse_connections = reuse_connections
        self.in_flight = 0

    async def start(self) -> None:
        if self._session is None:
            reuse: dict[str, Any] = (
                {"keepalive_timeout": 60} if self.reuse_connections else {"force_close": True}
            )
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, **reuse)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                skip_auto_headers=("User-Agent",),
                auto_decompress=False,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ready(self) -> bool:
        return self._session is not None

    def load(self) -> int:
        return 0

    def saturated(self) -> bool:
        return False

    def _url(self, endpoint: Endpoint) -> str:
        return self.base_url + PATHS[endpoint]

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamError(f"upstream {self.name} is not started")
        return self._session

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        self.in_flight += 1
        try:
            async with self.session.post(
                self._url(endpoint), data=orjson.dumps(body), headers=self._headers
            ) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise upstream_failure(self.name, resp.status, raw, resp.headers)
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if isinstance(exc, aiohttp.ServerTimeoutError):
                raise _timed_out(self.name) from None
            raise _unreachable(self.name, exc) from None
        except TimeoutError:
            raise _timed_out(self.name) from None
        finally:
            self.in_flight -= 1
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"upstream {self.name} sent a body that is not JSON", retryable=True
            ) from None
        if not isinstance(payload, dict) or ("choices" not in payload and "data" not in payload):
            raise UpstreamError(
                f"upstream {self.name} sent JSON that is not a completion", retryable=True
            )
        return Reply(payload)

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncGenerator[list[bytes], None]:
        self.in_flight += 1
        try:
            async with self.session.post(
                self._url(endpoint), data=orjson.dumps(body), headers=self._headers
            ) as resp:
                if resp.status >= 400:
                    raise upstream_failure(self.name, resp.status, await resp.read(), resp.headers)
                async for events in iter_events(resp.content.iter_any()):
                    batch: list[bytes] = []
                    for data in events:
                        if data == DONE:
                            if batch:
                                yield batch
                            # read to the end, so the connection goes back to the pool (a
                            # response released half-read is closed, and the next request
                            # would pay for a new connection)
                            await resp.content.read()
                            return
                        if b'"error"' in data:
                            error = _stream_error(self.name, data)
                            if error is not None:
                                raise error
                        batch.append(data)
                    if batch:
                        if stats.first_chunk_at is None:
                            stats.first_chunk_at = time.perf_counter()
                        stats.chunks += len(batch)
                        yield batch
                raise _cut(self.name)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, OSError) as exc:
            if isinstance(exc, aiohttp.ServerTimeoutError):
                raise _timed_out(self.name) from None
            if stats.chunks:
                raise _cut(self.name) from None
            raise _unreachable(self.name, exc) from None
        except TimeoutError:
            raise _timed_out(self.name) from None
        finally:
            self.in_flight -= 1


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
