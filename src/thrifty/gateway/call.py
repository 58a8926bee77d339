"""The call stage: send the request to its targets in order, with retries and circuit breakers.

Retries (jittered exponential backoff, honouring Retry-After) happen only for errors worth
retrying (connect errors, 429, 5xx, a stream cut before its first byte) and never once a byte
has reached the client. When a target fails for good, or its breaker is open, the next target in
the route's list is tried. Client errors (400, context length) are not retried and not fallen
back from: another model would refuse them too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

from thrifty.backends import Reply, StreamStats, Target
from thrifty.context import Attempt, RequestContext
from thrifty.errors import Overloaded, ThriftyError, UpstreamError, UpstreamUnavailable
from thrifty.gateway.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

_MAX_RETRY_AFTER_S = 10.0
_FALLBACK_ERRORS = (UpstreamError, Overloaded)


def upstream_body(ctx: RequestContext, target: Target) -> dict[str, Any]:
    """The body the target receives for this request (see `Target.request_body`)."""
    return target.request_body(ctx.body, ctx.stream)


def backoff_s(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, _MAX_RETRY_AFTER_S)
    return random.uniform(0, min(4.0, 0.25 * 2**attempt))  # full jitter


class Caller:
    def __init__(
        self,
        breakers: dict[str, CircuitBreaker],
        retries: dict[str, int],
        *,
        on_retry: Callable[[str], None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.breakers = breakers
        self.retries = retries
        self.on_retry = on_retry
        self.sleep = sleep

    async def complete(self, ctx: RequestContext) -> Reply:
        if ctx.cascade is not None and len(ctx.targets) > 1:
            from thrifty.gateway.cascade import complete

            return await complete(self, ctx)
        return await self.complete_in_order(ctx)

    async def complete_in_order(self, ctx: RequestContext) -> Reply:
        """The first target that answers, with retries and fallback; no verification."""

        async def attempt(target: Target, body: dict[str, Any]) -> Reply:
            return await target.backend.complete(ctx.endpoint, body)

        return await self._run(ctx, attempt)

    async def stream(
        self, ctx: RequestContext, stats: StreamStats
    ) -> tuple[list[bytes] | None, AsyncIterator[list[bytes]]]:
        """Open the stream and read its first payload; retries and fallback happen before it."""
        if ctx.cascade is not None and len(ctx.targets) > 1 and ctx.cascade.buffer_stream:
            from thrifty.gateway.cascade import stream

            return await stream(self, ctx, stats)
        return await self.stream_in_order(ctx, stats)

    async def stream_in_order(
        self, ctx: RequestContext, stats: StreamStats
    ) -> tuple[list[bytes] | None, AsyncIterator[list[bytes]]]:
        """`stream` without a cascade's verification."""

        async def attempt(target: Target, body: dict[str, Any]) -> tuple[list[bytes] | None, Any]:
            chunks = cast(
                AsyncGenerator[list[bytes], None], target.backend.stream(ctx.endpoint, body, stats)
            )
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                first = None
            except BaseException:
                await chunks.aclose()
                raise
            return first, self._watch(chunks, target)

        return await self._run(ctx, attempt)

    async def _run(
        self, ctx: RequestContext, attempt: Callable[[Target, dict[str, Any]], Any]
    ) -> Any:
        error: ThriftyError | None = None
        failed: Target | None = None
        for target in ctx.targets:
            breaker = self.breakers.get(target.upstream or "")
            if breaker is not None and not breaker.allow():
                error = UpstreamUnavailable(
                    f"upstream {target.upstream} is failing; its circuit is open",
                    headers={"retry-after": str(int(breaker.cooldown_s))},
                )
                ctx.attempts.append(Attempt(target.route, target.upstream, 503, error.code))
                failed = failed or target
                continue
            body = upstream_body(ctx, target)
            tries = 1 + self.retries.get(target.upstream or "", 0)
            for n in range(tries):
                began = time.perf_counter()
                try:
                    result = await attempt(target, body)
                except _FALLBACK_ERRORS as exc:
                    error = exc
                    ctx.attempts.append(
                        Attempt(
                            target.route,
                            target.upstream,
                            exc.status,
                            exc.code,
                            time.perf_counter() - began,
                        )
                    )
                    retryable = isinstance(exc, UpstreamError) and exc.retryable
                    if breaker is not None and isinstance(exc, UpstreamError):
                        breaker.record_failure()
                    # asked to wait longer than we would: the next target answers sooner
                    after = getattr(exc, "retry_after", None)
                    too_long = after is not None and after > _MAX_RETRY_AFTER_S
                    if too_long or not retryable or n + 1 == tries:
                        break
                    if breaker and not breaker.allow():
                        break
                    if self.on_retry is not None:
                        self.on_retry(target.upstream or target.route)
                    await self.sleep(backoff_s(n, getattr(exc, "retry_after", None)))
                    continue
                except BaseException:
                    if breaker is not None:
                        breaker.release()
                    raise
                if breaker is not None:
                    breaker.record_success()
                ctx.attempts.append(
                    Attempt(target.route, target.upstream, 200, None, time.perf_counter() - began)
                )
                ctx.answered_by = target
                if failed is not None and error is not None:
                    ctx.notes.append(f"fallback {failed.route} -> {target.route}: {error.code}")
                return result
            failed = failed or target
            if len(ctx.targets) > 1:
                logger.warning("request %s: %s failed (%s)", ctx.id, target.route, error)
        if error is None:
            raise UpstreamUnavailable("no target could take this request")
        raise error

    async def _watch(
        self, chunks: AsyncIterator[list[bytes]], target: Target
    ) -> AsyncIterator[list[bytes]]:
        """Pass the rest of a stream through; a failure mid-stream counts against the breaker."""
        try:
            async for chunk in chunks:
                yield chunk
        except UpstreamError:
            breaker = self.breakers.get(target.upstream or "")
            if breaker is not None:
                breaker.record_failure()
            raise
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()  # stop reading the upstream now: frees its slot and connection
