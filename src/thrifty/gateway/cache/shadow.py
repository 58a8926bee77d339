"""Shadow checks of the semantic cache: would the model have given the cached answer?

Two kinds, both after the client has its answer, off the request's path:

- a declined near-hit (a candidate the guard agreed with, in a similarity band the learned
  thresholds could not vouch for) is checked for free: the model answered that request anyway,
  so its fresh answer is compared with the cached one. This is how a closed band earns its way
  back (vCache's exploration, without paying for it);
- a sample of served semantic hits (`cache.shadow_sample`, default 0) is asked again of the
  target model, and its fresh answer compared with the one served. Each costs a model call,
  which no tenant's usage shows; keep the sample small.

Two answers agree when they are the same text, or when the content guard finds nothing that
differs (numbers, codes, names, dates, polarity, negation, key words) and their embeddings are
at least `AGREEMENT` similar. A false "wrong" only tightens the thresholds; so the comparison is
strict, and a false "right" is what it avoids.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.context import RequestContext
from thrifty.gateway.cache.evidence import SemanticHit
from thrifty.gateway.cache.guard import Signature, disagreement

if TYPE_CHECKING:
    from thrifty.encoders import Embedder
    from thrifty.gateway.cache.stage import ResponseCache

logger = logging.getLogger(__name__)

AGREEMENT = 0.9  # cosine of the two answers' embeddings, on top of the guard's agreement
_CHARS = 1000  # answers compared on their first characters (the embedding's cost grows)


def answer_text(payload: Any) -> str | None:
    """The first choice's text of a chat or completions answer."""
    try:
        choice = payload["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


def same_answer(embedder: Embedder, cached: str, fresh: str) -> bool:
    """Whether the fresh answer says what the cached one says (runs on the embedding thread)."""
    a, b = cached.strip()[:_CHARS], fresh.strip()[:_CHARS]
    if a == b:
        return True
    if not a or not b or disagreement(Signature.of(a), Signature.of(b)) is not None:
        return False
    vectors = embedder.embed_batch([a, b])
    return float(vectors[0] @ vectors[1]) >= AGREEMENT


class Shadows:
    """Schedules the checks from the cache's finisher; each runs as a task of its own."""

    def __init__(self, cache: ResponseCache, sample: float, rng: random.Random | None = None):
        self.cache = cache
        self.sample = sample
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def after(self, ctx: RequestContext) -> None:
        """Called when a request is done: check its semantic hit or declined near-hit."""
        evidence = self.cache.evidence
        hit = evidence.hit(ctx.id) if evidence is not None else None
        if hit is None or ctx.status != 200 or not ctx.targets:
            return
        if hit.served:
            if self.sample > 0 and self.rng.random() < self.sample:
                self._spawn(self._ask_again(ctx, hit))
            return
        target, by = ctx.targets[0], ctx.answered_by
        fresh = answer_text(ctx.reply)
        if (
            fresh is not None
            and by is not None
            and (by.route, by.model)
            == (
                target.route,
                target.model,
            )
        ):
            self._spawn(self._compare(hit, fresh))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(job)
        except RuntimeError:  # no event loop (a finisher called from sync code): no check
            job.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ask_again(self, ctx: RequestContext, hit: SemanticHit) -> None:

        target = ctx.targets[0]
        body = target.request_body(ctx.body, ctx.stream)
        body.pop("stream", None)
        body.pop("stream_options", None)
        try:
            reply = await target.backend.complete(ctx.endpoint, body)
        except Exception as exc:  # a shadow never fails anything
            logger.warning("semantic cache shadow call failed (%s)", exc)
            return
        fresh = answer_text(reply.payload)
        if fresh is not None:
            await self._compare(hit, fresh)

    async def _compare(self, hit: SemanticHit, fresh: str) -> None:
        cache = self.cache
        raw = await cache._io_call(cache.backend.get, hit.key, op="get")
        cached = answer_text(orjson.loads(raw)) if raw is not None else None
        if cached is None or cache.embedder is None or cache.evidence is None:
            return
        same = await asyncio.get_running_loop().run_in_executor(
            cache._embedding, same_answer, cache.embedder, cached, fresh
        )
        cache.evidence.record(hit.key, hit.similarity, correct=same, source="shadow")

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
