"""The one small protocol every backend implements, and what it returns.

A backend answers OpenAI-shaped requests (`complete` or `stream`) for the model names it was
registered under. The gateway never branches on a backend's type: what differs between the local
engine and a cloud upstream (admission, retries, circuit breaking) lives behind these methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Endpoint = Literal["chat", "completions", "embeddings"]

PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


@dataclass(slots=True)
class Reply:
    """A whole (non-streamed) answer: the OpenAI JSON object as the backend sent it."""

    payload: dict[str, Any]

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = self.payload.get("usage")
        return usage if isinstance(usage, dict) else None


@dataclass(slots=True)
class StreamStats:
    """Filled in while a stream is read: when the first event came, and how many."""

    first_chunk_at: float | None = None
    chunks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """Where answers come from: the local engine or an OpenAI-compatible upstream."""

    name: str
    kind: str  # "local" | "upstream", for route names and metrics

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def ready(self) -> bool: ...

    def load(self) -> int:
        """Requests waiting beyond the backend's parallel capacity (0 when idle or unbounded)."""
        ...

    def saturated(self) -> bool:
        """True when a new request would have to wait in a queue (routers may go elsewhere)."""
        ...

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Reply: ...

    def stream(
        self, endpoint: Endpoint, body: dict[str, Any], stats: StreamStats
    ) -> AsyncIterator[list[bytes]]:
        """Yield the SSE events' data (bytes, as `thrifty.sse` reads them), ending before [DONE].

        Payloads come in batches: those that arrived in one network read, so that they can
        leave in one write.

        Errors before the first payload raise ThriftyError; after it they raise too, and the API
        layer turns them into a final SSE error event.
        """
        ...
