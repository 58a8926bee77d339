"""An upstream that speaks Anthropic's Messages API (`api: anthropic`), behind the OpenAI protocol.

The gateway hands every backend an OpenAI chat request; this one sends it as an Anthropic
Messages request (`anthropic_format.from_openai`) with Anthropic's headers, and turns the answer
back into an OpenAI completion, or the stream's events into OpenAI chunks (with a usage chunk at
the end, as metering needs). The HTTP client, its pool, timeouts and error mapping are
`OpenAICompatBackend`'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from thrifty.backends.anthropic_format import ChunkStream, from_openai, to_completion
from thrifty.backends.base import Endpoint, Reply, StreamStats
from thrifty.backends.http import BadResponse
from thrifty.backends.openai_compat import OpenAICompatBackend, upstream_failure, wire_failure
from thrifty.errors import InvalidRequest, UpstreamError
from thrifty.sse import iter_events

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI clients often send none


class AnthropicBackend(OpenAICompatBackend):
    def __init__(self, name: str, base_url: str, *, api_key: str | None = None, **kw: Any) -> None:
        super().__init__(name, base_url, **kw)
        self._headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",
            "anthropic-version": VERSION,
        }
        if api_key:
            self._headers["x-api-key"] = api_key
        # Anthropic's base URL has no /v1: the path is /v1/messages below the origin's root
        self.messages_path = "/messages" if self.base_url.endswith("/v1") else "/v1/messages"

    def _request(self, endpoint: Endpoint, body: dict[str, Any], stream: bool) -> bytes:
        if endpoint != "chat":
            raise InvalidRequest(
                f"upstream {self.name} speaks Anthropic's Messages API: chat only", param="model"
            )
        request = from_openai(body, str(body.get("model")), DEFAULT_MAX_TOKENS)
        request["stream"] = stream
        return orjson.dumps(request)

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply:
        data = self._request(endpoint, body, stream=False)
        raw = await self.fetch(self.messages_path, data)
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"upstream {self.name} sent a body that is not JSON") from None
        if not isinstance(message, dict) or message.get("type") != "message":
            raise UpstreamError(f"upstream {self.name} sent JSON that is not a message")
        return Reply(to_completion(message, str(body.get("model"))))

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncGenerator[list[bytes], None]:
        data = self._request(endpoint, body, stream=True)
        chunks = ChunkStream(str(body.get("model")), int(time.time()))
        self.in_flight += 1
        conn = None
        try:
            async with asyncio.timeout(self.timeout_s) as deadline:
                conn = await self.post(self.messages_path, data)
                if conn.status >= 400:
                    raise upstream_failure(self.name, conn.status, await conn.read(), conn.headers)
                async for events in iter_events(conn.chunks(self.stream_idle_timeout_s)):
                    batch: list[bytes] = []
                    for raw in events:
                        event = orjson.loads(raw)
                        kind = event.get("type") if isinstance(event, dict) else None
                        if kind == "error":
                            message = (event.get("error") or {}).get("message", "")
                            raise UpstreamError(
                                f"upstream {self.name} failed mid-stream: {message}"
                            )
                        batch.extend(orjson.dumps(chunk) for chunk in chunks.event(event))
                        if kind == "message_stop":
                            if batch:
                                yield batch
                            await conn.read()  # to the end: the connection goes back to the pool
                            return
                    if batch:
                        if stats.first_chunk_at is None:
                            stats.first_chunk_at = time.perf_counter()
                            deadline.reschedule(None)
                        stats.chunks += len(batch)
                        yield batch
                raise UpstreamError(
                    f"upstream {self.name} closed the stream before it finished", retryable=True
                )
        except (OSError, BadResponse) as exc:
            raise wire_failure(self.name, exc, streamed=bool(stats.chunks)) from None
        finally:
            self.in_flight -= 1
            if conn is not None:
                conn.release()
