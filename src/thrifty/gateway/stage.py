"""What a stage is: a request half and answer halves, each optional.

A stage sees the request on its way in (`on_request`) and the answer on its way out, whole
(`on_reply`) or chunk by chunk (`on_stream` returns a per-request `ChunkFilter`), the way a
Starlette middleware wraps `send`: the same object handles both directions, so whole and streamed
answers cannot drift apart. Answer halves run in the reverse order of the request halves, and only
for the stages the request passed through (a cache hit is seen on its way out by the stages
before the cache, not after it). `on_finish` runs once per request for every stage whose request
half ran, success or error, after the client has the whole answer (for streams: its last byte).

A stage implements only the halves it cares about; the gateway calls only those.
"""

from __future__ import annotations

from typing import Any, Protocol

from thrifty.backends import Reply
from thrifty.context import RequestContext

Chunk = dict[str, Any]


class ChunkFilter(Protocol):
    """One streamed answer's chunks, on their way out. Raising ThriftyError ends the stream
    with an error event."""

    def chunk(self, chunk: Chunk) -> Chunk:
        """The chunk as it may leave (edited in place, or another)."""
        ...

    def close(self) -> list[Chunk]:
        """Chunks still held back when the stream ends (they pass the outer filters too)."""
        ...


class Stage:
    async def on_request(self, ctx: RequestContext) -> Reply | None:
        """Read or annotate the request; a Reply answers it here; ThriftyError refuses it."""
        return None

    def on_reply(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """The whole answer as it may leave. Copy before changing it: `ctx.reply` must stay the
        answer as the model gave it (the cache and capture store that)."""
        return payload

    def on_stream(self, ctx: RequestContext) -> ChunkFilter | None:
        """A filter for this request's streamed answer, or None when it has nothing to do."""
        return None

    def on_finish(self, ctx: RequestContext) -> None:
        """After the answer (or the error): charge, store, record."""


def implements(stage: Stage, half: str) -> bool:
    """Whether a stage overrides one of the halves (the gateway skips the ones it does not)."""
    return getattr(type(stage), half) is not getattr(Stage, half)
