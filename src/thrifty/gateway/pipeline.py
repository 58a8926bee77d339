"""The gateway: a plain list of stages, a caller, and the finishers that meter what happened.

A stage reads and annotates the RequestContext; it may answer the request itself (a cache hit)
by returning a Reply, or refuse it by raising a ThriftyError. Finishers run once per request,
success or error, after the answer is complete (for streams: after the last byte).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from thrifty.backends import Reply, StreamStats
from thrifty.context import RequestContext
from thrifty.gateway.call import Caller

logger = logging.getLogger(__name__)


class Stage(Protocol):
    async def __call__(self, ctx: RequestContext) -> Reply | None: ...


Finisher = Callable[[RequestContext], None]


class Gateway:
    def __init__(
        self,
        stages: Sequence[Stage],
        caller: Caller,
        meter: Finisher,
        finishers: Sequence[Finisher],
    ) -> None:
        self.stages = list(stages)
        self.caller = caller
        self.meter = meter
        self.finishers = list(finishers)

    async def prepare(self, ctx: RequestContext) -> Reply | None:
        """Run the stages; a Reply means the request was answered without calling a model."""
        for stage in self.stages:
            reply = await stage(ctx)
            if reply is not None:
                return reply
        return None

    async def complete(self, ctx: RequestContext) -> Reply:
        reply = await self.prepare(ctx)
        if reply is None:
            reply = await self.caller.complete(ctx)
        ctx.usage = reply.usage
        ctx.reply = reply.payload
        return reply

    async def stream(
        self, ctx: RequestContext, stats: StreamStats
    ) -> tuple[list[bytes] | None, AsyncIterator[list[bytes]]] | Reply:
        """A Reply when a stage answered; else the first batch of payloads and the rest."""
        reply = await self.prepare(ctx)
        if reply is not None:
            return reply
        return await self.caller.stream(ctx, stats)

    def settle(self, ctx: RequestContext) -> None:
        """Price the request (once): streams call it before their last chunk, to report cost."""
        if ctx.finished_at is None:
            ctx.finished_at = time.perf_counter()
            try:
                self.meter(ctx)
            except Exception:
                logger.exception("metering failed for %s", ctx.id)

    def finish(self, ctx: RequestContext) -> None:
        """Settle, then log and count the request. Runs exactly once per request."""
        self.settle(ctx)
        for finisher in self.finishers:
            try:
                finisher(ctx)
            except Exception:  # metering must never take a served answer down with it
                logger.exception("finisher %r failed for %s", finisher, ctx.id)
