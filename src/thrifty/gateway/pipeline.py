"""The gateway: the request's way in through the stages, to a backend, and its way back out.

`handle(ctx)` runs the stages' request halves in order until one answers (a cache hit) or all
have run and the caller asks a backend. The answer then goes back out through the answer halves
of the stages it passed, in reverse order: a whole answer through `on_reply`, a stream chunk by
chunk through each stage's `ChunkFilter`. The meter prices the answer once it is complete; the
stages' `on_finish` halves and the meter's records run once per request, after the client has the
answer (a stream's last byte) or the error.

Streams are read event by event (`thrifty.sse`) and parsed only where a stage needs the chunks or
where an event may carry usage or a finish reason, whatever its JSON spacing. The usage the client
did not ask for never reaches it; the stream's cost rides on the usage chunk when the client asked
for one (`stream_options.include_usage`), else on the last chunk that carries `finish_reason`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.backends import Reply, StreamStats
from thrifty.context import RequestContext
from thrifty.costs.money import format_nanos
from thrifty.errors import ThriftyError, UpstreamError
from thrifty.gateway.answer import Reassembler, replay
from thrifty.gateway.call import Caller
from thrifty.gateway.stage import Chunk, ChunkFilter, Stage, implements
from thrifty.gateway.textfirst import TextFirst, may_carry_nothing
from thrifty.sse import needs_parse

if TYPE_CHECKING:
    from thrifty.gateway.tracing import Tracer

logger = logging.getLogger(__name__)

Recorder = Callable[[RequestContext], None]


class Gateway:
    def __init__(
        self,
        stages: Sequence[Stage],
        caller: Caller,
        price: Recorder,
        recorders: Sequence[Recorder] = (),
        tracer: Tracer | None = None,
    ) -> None:
        self.stages = list(stages)
        self.caller = caller
        self.price = price  # sets the request's cost and baseline from its usage
        self.recorders = list(recorders)  # request log, metrics, audit: after every finish
        # Tracing replaces these methods on this instance only, so tracing off runs the very
        # code it ran before (no check per request, no span object).
        self.tracer = tracer
        if tracer is not None:
            self.price = tracer.meter(price)
            self.handle = self._traced_handle  # type: ignore[method-assign]
            self.finish = self._traced_finish  # type: ignore[method-assign]
        self._index()

    def _index(self) -> None:
        """Which stages implement which halves: the hot path calls no empty method."""
        stages = self.stages
        tracer = self.tracer
        self._requests: list[tuple[int, Callable[[RequestContext], Awaitable[Reply | None]]]] = [
            (i, s.on_request if tracer is None else tracer.stage(s))
            for i, s in enumerate(stages)
            if implements(s, "on_request")
        ]
        self._replies = [(i, s) for i, s in enumerate(stages) if implements(s, "on_reply")][::-1]
        self._streams = [(i, s) for i, s in enumerate(stages) if implements(s, "on_stream")][::-1]
        self._finishes = [(i, s) for i, s in enumerate(stages) if implements(s, "on_finish")][::-1]

    def add(self, stage: Stage, before: type | None = None) -> None:
        """Insert a stage (before the first stage of type `before`, else last)."""
        at = next((i for i, s in enumerate(self.stages) if before and isinstance(s, before)), None)
        self.stages.insert(len(self.stages) if at is None else at, stage)
        self._index()

    # -- the way in ---------------------------------------------------------------------------

    async def handle(self, ctx: RequestContext) -> dict[str, Any] | Stream:
        """The whole answer (a dict), or a Stream; raises ThriftyError (after finishing)."""
        depth = 0  # stages whose request half ran (their finish halves will run)
        answered_at = len(self.stages)  # answer halves run for the stages before this one
        try:
            reply: Reply | None = None
            for i, on_request in self._requests:
                depth = i + 1
                reply = await on_request(ctx)
                if reply is not None:
                    answered_at = i
                    break
            depth = max(depth, answered_at if reply is not None else len(self.stages))
            if ctx.stream:
                return await self._open_stream(ctx, reply, answered_at, depth)
            if reply is None:
                reply = await self.caller.complete(ctx)
            ctx.reply = payload = reply.payload
            ctx.usage = reply.usage
            self.settle(ctx)
            for i, stage in self._replies:
                if i < answered_at:
                    payload = stage.on_reply(ctx, payload)
        except Exception as exc:
            raise self._failed(ctx, exc, depth) from None
        self.finish(ctx, depth)
        return payload

    async def _open_stream(
        self, ctx: RequestContext, reply: Reply | None, answered_at: int, depth: int
    ) -> Stream:
        stats = StreamStats()
        source: AsyncIterator[list[bytes]]
        if reply is None:
            first, rest = await self.caller.stream(ctx, stats)
            source = _chain(first, rest)
        else:
            source = _replayed(reply.payload)
        filters = [
            f for i, s in self._streams if i < answered_at and (f := s.on_stream(ctx)) is not None
        ]
        return Stream(self, ctx, depth, source, filters, stats)

    async def _traced_handle(self, ctx: RequestContext) -> dict[str, Any] | Stream:
        assert self.tracer is not None
        self.tracer.open(ctx)
        return await Gateway.handle(self, ctx)

    def _traced_finish(self, ctx: RequestContext, depth: int) -> None:
        assert self.tracer is not None
        self.tracer.open(ctx)  # a refused request's trace opens here
        Gateway.finish(self, ctx, depth)
        self.tracer.close(ctx)

    def refuse(self, ctx: RequestContext, exc: ThriftyError) -> None:
        """A request refused before it reached the stages (unreadable, unauthenticated)."""
        ctx.status, ctx.error_code = exc.status, exc.code
        self.finish(ctx, 0)

    def _failed(self, ctx: RequestContext, exc: Exception, depth: int) -> ThriftyError:
        error = exc if isinstance(exc, ThriftyError) else internal_error(ctx)
        ctx.status, ctx.error_code = error.status, error.code
        self.finish(ctx, depth)
        return error

    # -- the way out ------------------------------------------------------------------------

    def settle(self, ctx: RequestContext) -> None:
        """Price the request, once, when its answer is complete (or it failed)."""
        if ctx.finished_at is None:
            ctx.finished_at = time.perf_counter()
            try:
                self.price(ctx)
            except Exception:
                logger.exception("metering failed for %s", ctx.id)

    def finish(self, ctx: RequestContext, depth: int) -> None:
        """The finish halves of the stages the request entered, then the records. Once."""
        self.settle(ctx)
        for i, stage in self._finishes:
            if i < depth:
                try:
                    stage.on_finish(ctx)
                except Exception:  # metering must never take a served answer down with it
                    logger.exception("%s.on_finish failed for %s", type(stage).__name__, ctx.id)
        for record in self.recorders:
            try:
                record(ctx)
            except Exception:
                logger.exception("recording %s failed", ctx.id)


class Stream:
    """One streamed answer on its way out: `batches()` for the client, `close()` when done."""

    def __init__(
        self,
        gateway: Gateway,
        ctx: RequestContext,
        depth: int,
        source: AsyncIterator[list[bytes]],
        filters: list[ChunkFilter],
        stats: StreamStats,
    ) -> None:
        self.gateway = gateway
        self.ctx = ctx
        self.depth = depth
        self.source = source
        self.filters = filters
        self.stats = stats
        self.wants_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))
        self.whole = Reassembler() if ctx.keep_reply else None
        self.usage_chunk: Chunk | None = None  # held: the cost goes into it at the end
        self.finish_chunk: Chunk | None = None  # held when the cost rides on it instead
        self.text_first = TextFirst()  # no chunk that carries nothing reaches the client
        self._closed = False

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """The JSON payloads of the client's SSE events; a batch leaves in one write.

        An error after the first byte is reported as a last error event (the status is sent).
        One loop with local names: it runs for every event of every stream.
        """
        ctx, filters, whole, wants_usage = self.ctx, self.filters, self.whole, self.wants_usage
        text_first = self.text_first
        parse_all = bool(filters) or whole is not None
        try:
            async for batch in self.source:
                out: list[bytes] = []
                for data in batch:
                    if not (parse_all or needs_parse(data) or may_carry_nothing(data)):
                        if self.finish_chunk is not None:  # a choice went on after one finished
                            self._release(out)
                        out.append(data)  # the common case: it leaves as it came
                        continue
                    chunk = _event(data, ctx)
                    usage = chunk.get("usage")
                    if usage is not None:
                        if isinstance(usage, dict):
                            ctx.usage = usage
                        if not chunk.get("choices"):
                            self.usage_chunk = chunk  # held: the cost goes into it at the end
                            continue
                        if not wants_usage:
                            del chunk["usage"]  # some servers put usage on the last choice chunk
                            data = b""
                    if whole is not None:
                        whole.add(chunk)
                    if filters:
                        for f in filters:
                            chunk = f.chunk(chunk)
                        data = b""
                    shown = text_first.chunk(chunk)
                    if shown is None:
                        continue  # carries nothing: not sent (its role rides on the next)
                    if shown is not chunk:
                        chunk, data = shown, b""
                    if not wants_usage and _finishes(chunk):
                        self._release(out)
                        self.finish_chunk = chunk  # held: the cost rides on it
                        continue
                    if self.finish_chunk is not None:
                        self._release(out)
                    out.append(data or orjson.dumps(chunk))
                if out:
                    yield out
            yield self._end()
        except Exception as exc:
            error = exc if isinstance(exc, ThriftyError) else internal_error(ctx)
            ctx.status, ctx.error_code = error.status, error.code
            yield [error.body()]
        finally:
            aclose = getattr(self.source, "aclose", None)
            if aclose is not None:
                await aclose()  # an upstream we stopped reading is closed now, not by GC

    def _filter(self, chunk: Chunk, start: int) -> Chunk:
        for f in self.filters[start:]:
            chunk = f.chunk(chunk)
        return chunk

    def _release(self, out: list[bytes]) -> None:
        if self.finish_chunk is not None:
            out.append(orjson.dumps(self.finish_chunk))
            self.finish_chunk = None

    def _end(self) -> list[bytes]:
        """What the stream ends with: held-back text, then the chunk that carries the cost."""
        ctx = self.ctx
        out: list[bytes] = []
        for n, f in enumerate(self.filters):
            for held in f.close():
                tail = self.text_first.chunk(self._filter(held, n + 1))
                if tail is None:
                    continue
                if not self.wants_usage and _finishes(tail):
                    self._release(out)
                    self.finish_chunk = tail
                else:
                    out.append(orjson.dumps(tail))
        if self.whole is not None:
            ctx.reply = self.whole.payload(ctx.usage)
        if ctx.first_token_at is None:
            ctx.first_token_at = self.stats.first_chunk_at
        self.gateway.settle(ctx)
        carrier = self.usage_chunk if self.wants_usage else self.finish_chunk
        if carrier is not None:
            carrier["x_thrifty"] = {
                "request_id": ctx.id,
                "route": ctx.route,
                "reason": ctx.reason_header,
                "cost_usd": cost_header(ctx),
            }
        if self.wants_usage:
            self._release(out)
            if self.usage_chunk is not None:
                out.append(orjson.dumps(self.usage_chunk))
        else:
            self._release(out)
        return out

    def close(self, disconnected: bool) -> None:
        """After the last byte, or when the client left: finish the request (once)."""
        if self._closed:
            return
        self._closed = True
        if disconnected:
            self.ctx.status, self.ctx.error_code = 499, "client_disconnected"
        if self.ctx.first_token_at is None:
            self.ctx.first_token_at = self.stats.first_chunk_at
        self.gateway.finish(self.ctx, self.depth)


def _event(data: bytes, ctx: RequestContext) -> Chunk:
    """A stream event's JSON object; anything else is the target's failure, not ours."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{ctx.route} sent a stream event that is not JSON") from None
    if not isinstance(chunk, dict):
        raise UpstreamError(f"{ctx.route} sent a stream event that is not an object")
    choices = chunk.get("choices")
    if choices is not None:
        if type(choices) is not list:
            raise UpstreamError(f"{ctx.route} sent a stream event whose choices are not a list")
        for choice in choices:  # a loop, not all(<generator>): it runs for every event
            if type(choice) is not dict:
                raise UpstreamError(
                    f"{ctx.route} sent a stream event whose choices are not objects"
                )
    return chunk


def _finishes(chunk: Chunk) -> bool:
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") is not None:
            return True
    return False


def cost_header(ctx: RequestContext) -> str:
    return "unknown" if ctx.cost_nanos is None else format_nanos(ctx.cost_nanos)


def internal_error(ctx: RequestContext) -> ThriftyError:
    """A bug of ours: log it with its traceback, tell the client in OpenAI's shape."""
    logger.exception("request %s failed inside the gateway", ctx.id)
    return ThriftyError(f"internal error (request {ctx.id}); see the server log")


async def _chain(
    first: list[bytes] | None, rest: AsyncIterator[list[bytes]]
) -> AsyncIterator[list[bytes]]:
    try:
        if first is not None:
            yield first
        async for batch in rest:
            yield batch
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


async def _replayed(payload: dict[str, Any]) -> AsyncIterator[list[bytes]]:
    """A whole answer (from the cache) as one batch of stream events."""
    yield [orjson.dumps(chunk) for chunk in replay(payload)]
