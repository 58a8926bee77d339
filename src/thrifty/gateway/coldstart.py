"""Say when a request waited for its local model to load: `x-thrifty-cold-start-ms`.

The engine pool (backends/pool.py) notes the wait in the request's context while it loads the
model; this stage, last in the list, puts it in the answer's headers before they leave, for
whole and streamed answers alike (a stream's headers go out after its first chunk was read).
"""

from __future__ import annotations

from typing import Any

from thrifty.backends.pool import COLD_START_MS
from thrifty.context import RequestContext
from thrifty.gateway.stage import ChunkFilter, Stage

HEADER = "x-thrifty-cold-start-ms"


class ColdStart(Stage):
    def on_reply(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        _note(ctx)
        return payload

    def on_stream(self, ctx: RequestContext) -> ChunkFilter | None:
        _note(ctx)
        return None


def _note(ctx: RequestContext) -> None:
    waited_ms = COLD_START_MS.get()
    if waited_ms is not None and ctx.answered_by is not None:
        ctx.response_headers[HEADER] = f"{waited_ms:.0f}"
