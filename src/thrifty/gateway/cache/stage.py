"""The cache stage: lookup on the way in (before any model is called), the write when finished.

Lookup: requests the cache may serve (by default, reproducible ones: temperature 0 or a seed)
are looked up by their exact key, then, when the semantic cache is on, by the nearest cached
question in their partition. A hit answers the request: route `cache`, no model called, the
original usage kept so that the meter prices the baseline the hit saved.

Write: the finish half stores the answer of a request that missed (or asked `no-cache`) once it is
complete and succeeded, streamed answers included (the gateway reassembles them when the stage sets
`ctx.keep_reply`). What is stored is the answer as the model gave it: moderation and privacy run on
every answer that leaves, cache hits too. Only an answer from the target the key names is stored: a
fallback's answer would otherwise pin a worse model's reply under the preferred model's key.

What a request never touches: the cache when its prompt was masked for the cloud (its answer was
written for placeholders); the shared (Redis) cache when its prompt carries personal data,
unless `cache.shared_pii`. A failing Redis is skipped for a few seconds, never a failed request.

The lookup runs on the event loop when the cache is in-process (microseconds); Redis calls and
embeddings run on small thread pools of their own, so neither blocks the loop.

Semantic hits are remembered for a while by request id: feedback on one (`feedback`), a shadow
check of one (`check`) or an `invalidate` directive becomes evidence for the learned thresholds,
and each hit is written, masked, to the audit file that `thrifty cache audit` reads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from thrifty.backends import Reply
from thrifty.config import CacheSettings
from thrifty.context import RequestContext
from thrifty.gateway.cache import audit
from thrifty.gateway.cache.base import Backend
from thrifty.gateway.cache.evidence import Evidence, SemanticHit
from thrifty.gateway.cache.guard import Signature
from thrifty.gateway.cache.keys import RequestKeys, deterministic, directives, request_keys
from thrifty.gateway.cache.memory import MemoryStore
from thrifty.gateway.cache.metrics import CacheMetrics
from thrifty.gateway.cache.redis import RedisStore, VectorRecord
from thrifty.gateway.cache.shadow import Shadows
from thrifty.gateway.metrics import Metrics
from thrifty.gateway.stage import Stage

if TYPE_CHECKING:
    from thrifty.encoders import Embedder
    from thrifty.gateway.cache.semantic import Match, SemanticIndex, Vector
    from thrifty.gateway.cache.thresholds import Thresholds

logger = logging.getLogger(__name__)

T = TypeVar("T")

_BACKOFF_S = 5.0  # after a backend failure, go without the cache this long
_FINISHED = ("stop", "length")


@dataclass(slots=True)
class _Pending:
    """What the finish half needs to store a request's answer."""

    keys: RequestKeys
    ttl_s: float
    text: str | None  # the question to index semantically, if any
    vector: Vector | None = None  # its embedding, when the lookup computed one
    signature: Signature | None = None


class ResponseCache(Stage):
    def __init__(
        self,
        settings: CacheSettings,
        metrics: Metrics,
        *,
        backend: Backend | None = None,
        embedder: Embedder | None = None,
        home: Path | None = None,
    ) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.metrics = CacheMetrics(metrics.registry)
        self.backend = backend or build_backend(settings, self._evicted)
        self.shared = self.backend if isinstance(self.backend, RedisStore) else None
        if self.shared is None and home is not None:  # workers apply each other's clears
            from thrifty.gateway.cache.clears import CLEARS_FILE, ClearingStore, ClearLog

            self.backend = ClearingStore(self.backend, ClearLog(home / CLEARS_FILE))
        self.max_entry_bytes = max(1024, settings.max_bytes // 64)  # one answer can't flush all
        self.embedder: Embedder | None = None
        self.index: SemanticIndex | None = None
        self.thresholds: Thresholds | None = None
        self.audit: audit.AuditLog | None = None
        self.evidence: Evidence | None = None
        self.shadows: Shadows | None = None
        if settings.enabled and settings.semantic:
            from thrifty.encoders import load_embedder
            from thrifty.gateway.cache.semantic import SemanticIndex
            from thrifty.gateway.cache.thresholds import Calibration, Thresholds

            self.embedder = embedder or load_embedder(
                settings.semantic_model, settings.semantic_threads
            )
            calibration = self.embedder.calibration
            if settings.semantic_threshold is not None:
                calibration = Calibration(settings.semantic_threshold, calibration.scale)
            self.thresholds = Thresholds(
                calibration, settings.max_error_rate, max_entries=settings.max_entries
            )
            self.index = SemanticIndex(self.embedder.dim, self.thresholds, settings.max_entries)
            self.evidence = Evidence(
                self.thresholds, self.metrics, shared=self.shared, submit=self._submit_io
            )
            self.shadows = Shadows(self, settings.shadow_sample)
            if home is not None and settings.audit_hits > 0:
                self.audit = audit.AuditLog(home / audit.FILENAME, settings.audit_hits)
        # threads start on first use: an in-process exact cache never starts one
        self._io = ThreadPoolExecutor(4, "thrifty-cache-io") if self.shared is not None else None
        self._embedding = (
            ThreadPoolExecutor(1, "thrifty-cache-embed") if self.index is not None else None
        )
        self._pending: dict[str, _Pending] = {}  # request id -> what to store when it is done
        self._jobs: set[Future[Any]] = set()
        self._down_until = 0.0
        self._vectors_after = "0"  # last stream id read from Redis
        self._refreshed_at = float("-inf")
        self._refresh_lock = threading.Lock()
        self._indexing: Counter[str] = Counter()  # partition -> questions on their way in
        self._indexing_lock = threading.Lock()
        metrics.on_collect(self._refresh_gauges)
        if self._embedding is not None:  # load the model's weights now, off the event loop
            assert self.embedder is not None
            self._submit(self._embedding, self.embedder.embed, "warm up")
            self._submit(self._embedding, _warm_up_guard)

    # -- the stage --------------------------------------------------------------------------

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if not self.enabled or not ctx.targets:
            return None
        wants = directives(ctx)
        skip = self._skip_reason(ctx, wants.lookup or wants.store)
        if skip is not None:
            self.metrics.skipped.labels(skip).inc()
            ctx.cache = "bypass"
            return None
        keys = request_keys(ctx, semantic=self.index is not None)
        text = (
            keys.text if keys.text and len(keys.text) <= self.settings.semantic_max_chars else None
        )
        ttl = min(wants.ttl_s or self.settings.ttl_s, self.settings.ttl_s)
        pending = _Pending(keys, ttl, text)
        if text is not None and self.index is not None:
            pending.vector = self._routed_vector(ctx, text)
            if pending.vector is not None:
                pending.signature = Signature.of(text)
        if wants.invalidate:
            await self._invalidate(ctx, pending)
            ctx.cache = "invalidated"
        elif wants.lookup:
            reply = await self._lookup(ctx, pending)
            if reply is not None:
                return reply
            ctx.cache = "miss"
        else:
            self.metrics.skipped.labels("no-cache").inc()
            ctx.cache = "bypass"
        if wants.store:
            self._pending[ctx.id] = pending
            if ctx.stream:
                ctx.keep_reply = True
        return None

    def _skip_reason(self, ctx: RequestContext, wanted: bool) -> str | None:
        if not wanted:
            return "no-store"  # no-cache and no-store together: nothing to do
        if ctx.pii_mapping is not None:
            return "masked"  # the answer was written for placeholders, not for this prompt
        if ctx.pii and self.shared is not None and not self.settings.shared_pii:
            return "pii"
        if (
            self.settings.only_deterministic
            and ctx.endpoint != "embeddings"  # an embedding does not sample
            and not deterministic(ctx.body)
        ):
            return "nondeterministic"
        if self.shared is not None and time.monotonic() < self._down_until:
            return "unavailable"
        return None

    async def _lookup(self, ctx: RequestContext, pending: _Pending) -> Reply | None:
        keys = pending.keys
        raw = await self._io_call(self.backend.get, keys.exact, op="get")
        if raw is not None:
            return self._answer(ctx, raw, "exact", None)
        self.metrics.misses.labels("exact").inc()
        match = await self._semantic_match(ctx, pending)
        if match is not None:
            raw = await self._io_call(self.backend.get, match.key, op="get")
            if raw is not None:
                self._remember_hit(ctx, pending, match)
                return self._answer(ctx, raw, "semantic", match.similarity)
            assert self.index is not None
            self.index.remove(match.key)  # evicted or expired since it was indexed
        if self.index is not None:
            self.metrics.misses.labels("semantic").inc()
        return None

    async def _semantic_match(self, ctx: RequestContext, pending: _Pending) -> Match | None:
        """The cached question this one may be answered with, if the semantic cache has one."""
        keys = pending.keys
        if self.index is None or pending.text is None or keys.partition is None:
            return None
        if self.shared is not None:
            await self._refresh()  # other replicas' questions (at most every refresh_s)
        if not self.index.knows(keys.partition) and not self._indexing.get(keys.partition):
            # nothing to compare with: if the answer is stored, its question is embedded then,
            # off the request's path
            return None
        if pending.vector is not None and pending.signature is not None:
            vector, signature = pending.vector, pending.signature  # the router's embedding
        else:
            embedding = self._embed(pending.text)  # on its thread, while the guard reads
            signature = Signature.of(pending.text)
            vector = await embedding
        pending.vector, pending.signature = vector, signature
        found = self.index.search(keys.partition, vector, signature)
        if found.declined is not None:
            self.metrics.declined.labels(found.declined).inc()
            if found.declined == "unvouched":  # the guard agreed: worth a shadow check
                near = SemanticHit(ctx.tenant, found.declined_key, found.declined_similarity, False)
                assert self.evidence is not None
                self.evidence.keep(ctx.id, near)
        return found.match

    async def _invalidate(self, ctx: RequestContext, pending: _Pending) -> None:
        """Drop the exact entry, or record that the semantic match would be a wrong hit."""
        raw = await self._io_call(self.backend.get, pending.keys.exact, op="get")
        if raw is not None:
            await self._io_call(self.backend.delete, pending.keys.exact, op="delete")
            if self.index is not None:
                self.index.remove(pending.keys.exact)
            return
        match = await self._semantic_match(ctx, pending)
        if match is not None:
            assert self.evidence is not None
            self.evidence.record(match.key, match.similarity, correct=False, source="invalidate")

    def _remember_hit(self, ctx: RequestContext, pending: _Pending, match: Match) -> None:
        assert self.evidence is not None
        self.evidence.keep(ctx.id, SemanticHit(ctx.tenant, match.key, match.similarity))
        if self.audit is not None and pending.text is not None:
            assert self.thresholds is not None
            record = audit.hit_record(
                request_id=ctx.id,
                tenant=ctx.tenant,
                question=pending.text,
                matched=match.question,
                similarity=match.similarity,
                threshold=self.thresholds.entry_threshold(match.key),
                key=match.key,
            )
            # a file write: on the embedding thread, after the answer
            assert self._embedding is not None
            self._submit(self._embedding, self._write_audit, record)

    def _write_audit(self, record: dict[str, Any]) -> None:
        assert self.audit is not None
        try:
            self.audit.append(record)
        except OSError as exc:
            logger.warning("cannot write the cache audit file (%s)", exc)

    # -- evidence ---------------------------------------------------------------------------

    def semantic_hit(self, request_id: str) -> SemanticHit | None:
        """The semantic hit (or declined near-hit) of a recent request: what a shadow checks."""
        return self.evidence.hit(request_id) if self.evidence is not None else None

    def feedback(self, tenant: str, request_id: str, good: bool) -> bool:
        """A client's thumbs on an answer: evidence when it was a semantic hit; whether it was."""
        hit = self.semantic_hit(request_id)
        if hit is None or not hit.served or hit.tenant != tenant:
            return False
        return self.check(request_id, good, source="feedback")

    def check(self, request_id: str, correct: bool, *, source: str = "shadow") -> bool:
        """Whether the cached answer of `request_id`'s semantic (near-)hit was right, as a
        shadow check comparing it with a fresh answer found; False if no such hit is known."""
        hit = self.semantic_hit(request_id)
        if hit is None or self.evidence is None:
            return False
        self.evidence.record(hit.key, hit.similarity, correct=correct, source=source)
        return True

    def _answer(
        self, ctx: RequestContext, raw: bytes, kind: str, similarity: float | None
    ) -> Reply:
        payload = orjson.loads(raw)  # a fresh object: the API may edit what it sends
        ctx.cache = "hit-exact" if similarity is None else f"hit-semantic;sim={similarity:.2f}"
        usage = payload.get("usage")
        ctx.usage = usage if isinstance(usage, dict) else None
        self.metrics.hits.labels(kind).inc()
        return Reply(payload)

    def clear(self, tenant: str | None = None) -> int:
        """Drop one tenant's cached answers, or all, wherever they are shared; blocking."""
        from thrifty.gateway.cache.keys import tenant_tag

        return self.backend.clear(tenant_tag(tenant) if tenant else None)

    # -- when finished: the write ------------------------------------------------------------------

    def on_finish(self, ctx: RequestContext) -> None:
        """Store a completed answer that a model gave to a request that may be cached."""
        if self.shadows is not None:
            self.shadows.after(ctx)  # a semantic hit or declined near-hit: check it
        pending = self._pending.pop(ctx.id, None)
        if pending is None or ctx.status != 200 or ctx.route == "cache" or ctx.reply is None:
            return
        by, keys = ctx.answered_by, pending.keys
        if by is None or (by.route, by.model) != (keys.route, keys.model):
            return  # a fallback answered: not what the key names
        payload = storable(ctx.reply, ctx.endpoint, ctx.stream)
        if payload is None:
            return
        value = orjson.dumps(payload)
        if len(value) > self.max_entry_bytes:
            return
        indexed = self._wants_index(pending)
        if indexed:  # from now until it is in the index, lookups in its partition must embed
            self._indexing_started(pending)
        if self._io is None:
            self.backend.put(keys.exact, value, pending.ttl_s)
            self.metrics.writes.labels("exact").inc()
            if indexed:
                self._index_question(pending)
        else:
            self._submit(self._io, self._write_shared, pending, value, indexed)

    def _write_shared(self, pending: _Pending, value: bytes, indexed: bool) -> None:
        """On an I/O thread: the entry, then its question."""
        try:
            self.backend.put(pending.keys.exact, value, pending.ttl_s)
        except Exception as exc:  # the answer was served; the cache just misses it
            self._failed("put", exc)
            if indexed:
                self._indexing_done(pending)
            return
        self.metrics.writes.labels("exact").inc()
        if indexed:
            self._index_question(pending)

    def _wants_index(self, pending: _Pending) -> bool:
        return self.index is not None and pending.text is not None and bool(pending.keys.partition)

    def _index_question(self, pending: _Pending) -> None:
        if pending.vector is not None:
            self._add_question(pending)
            return
        # the lookup did not embed it (no-cache, or nothing to compare with): embed it now, on
        # the embedding thread; a lookup queued behind it there sees it indexed
        assert self._embedding is not None
        self._submit(self._embedding, self._embed_and_index, pending)

    def _embed_and_index(self, pending: _Pending) -> None:
        assert pending.text is not None
        try:
            pending.vector = self._embed_now(pending.text)
            pending.signature = Signature.of(pending.text)
        except BaseException:
            self._indexing_done(pending)
            raise
        self._add_question(pending)

    def _add_question(self, pending: _Pending) -> None:
        assert self.index is not None and pending.keys.partition is not None
        assert pending.vector is not None and pending.signature is not None
        try:
            expires_at = time.time() + pending.ttl_s
            keys, vector, partition = pending.keys, pending.vector, pending.keys.partition
            question = audit.mask(pending.text or "") if self.audit is not None else ""
            self.index.add(partition, keys.exact, vector, pending.signature, expires_at, question)
            self.metrics.writes.labels("semantic").inc()
            if self.shared is not None:
                record = VectorRecord(
                    keys.exact,
                    partition,
                    expires_at,
                    vector.tobytes(),
                    orjson.dumps(pending.signature.to_list()),
                    question,
                )
                try:
                    self.shared.add_vector(record)
                except Exception as exc:
                    self._failed("put", exc)
        finally:
            self._indexing_done(pending)

    def _indexing_started(self, pending: _Pending) -> None:
        assert pending.keys.partition is not None
        with self._indexing_lock:
            self._indexing[pending.keys.partition] += 1

    def _indexing_done(self, pending: _Pending) -> None:
        assert pending.keys.partition is not None
        with self._indexing_lock:
            self._indexing[pending.keys.partition] -= 1
            if self._indexing[pending.keys.partition] <= 0:
                del self._indexing[pending.keys.partition]

    # -- helpers ----------------------------------------------------------------------------

    async def _io_call(self, fn: Callable[..., T], *args: Any, op: str) -> T | None:
        """`fn(*args)`: inline for the in-process backend, else on the I/O pool, failing open."""
        if self._io is None:
            return fn(*args)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)
        except Exception as exc:
            self._failed(op, exc)
            return None

    def _routed_vector(self, ctx: RequestContext, text: str) -> Vector | None:
        """The router's embedding of the same question by the same model (learned scorer), if any:
        an `auto` request is embedded once, not once per stage."""
        features = ctx.features
        if features is None or features.embedding is None or self.embedder is None:
            return None
        if features.embedder != self.embedder.name or features.text != text:
            return None
        vector: Vector = features.embedding
        return vector

    def _embed(self, text: str) -> asyncio.Future[Vector]:
        assert self._embedding is not None
        return asyncio.get_running_loop().run_in_executor(self._embedding, self._embed_now, text)

    def _embed_now(self, text: str) -> Vector:
        assert self.embedder is not None
        started = time.perf_counter()
        vector = self.embedder.embed(text)
        self.metrics.embed_seconds.observe(time.perf_counter() - started)
        return vector

    async def _refresh(self) -> None:
        """Add the vectors other replicas wrote since the last look (at most every refresh_s)."""
        now = time.monotonic()
        if now - self._refreshed_at < self.settings.semantic_refresh_s:
            return
        self._refreshed_at = now
        await self._io_call(self._read_vectors, op="refresh")

    def _read_vectors(self) -> None:
        import numpy as np

        assert self.shared is not None and self.index is not None
        with self._refresh_lock:
            if self.evidence is not None:
                self.evidence.read_shared()  # other replicas' checks of semantic hits
            records, self._vectors_after = self.shared.read_vectors(self._vectors_after)
            for record in records:
                if record.key in self.index:
                    continue  # this replica's own, or already read
                vector = np.frombuffer(record.vector, np.float32)
                try:
                    signature = Signature.from_list(orjson.loads(record.signature))
                except (ValueError, TypeError):
                    continue  # written by an older version: its question is indexed again
                self.index.add(
                    record.partition,
                    record.key,
                    vector,
                    signature,
                    record.expires_at,
                    record.question,
                )

    def _submit_io(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._io is not None
        self._submit(self._io, fn, *args)

    def _submit(self, pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> None:
        job = pool.submit(fn, *args)
        self._jobs.add(job)
        job.add_done_callback(self._done)

    def _done(self, job: Future[Any]) -> None:
        self._jobs.discard(job)
        exc = None if job.cancelled() else job.exception()
        if exc is not None:
            logger.error("cache write failed", exc_info=exc)

    def _failed(self, op: str, exc: Exception) -> None:
        self.metrics.errors.labels(op).inc()
        now = time.monotonic()
        if now >= self._down_until:
            logger.warning(
                "cache backend failed on %s (%s); going on without it for %gs", op, exc, _BACKOFF_S
            )
        self._down_until = now + _BACKOFF_S

    def _evicted(self, key: str, reason: str) -> None:
        if self.index is not None:
            self.index.remove(key)
        self.metrics.evictions.labels(reason).inc()

    def _refresh_gauges(self) -> None:
        # a scrape never waits on Redis: the shared backend reports its last known numbers
        stats = self.backend.stats() if self.shared is None else self.shared.last_stats
        self.metrics.entries.set(stats.entries)
        self.metrics.bytes.set(stats.bytes)
        self.metrics.vectors.set(len(self.index) if self.index is not None else 0)
        if self.thresholds is not None:
            rate = self.thresholds.error_rate
            self.metrics.error_rate.set(float("nan") if rate is None else rate)
            self.metrics.threshold.set(self.thresholds.threshold)

    async def flush(self) -> None:
        """Wait for the writes and shadow checks in flight (tests, benchmarks, shutdown)."""
        if self.shadows is not None:
            await self.shadows.wait()
        while self._jobs:
            await asyncio.gather(*(asyncio.wrap_future(job) for job in list(self._jobs)))

    def close(self) -> None:
        """Finish the writes in flight, stop the threads, close the backend."""
        while self._jobs:
            wait_futures(list(self._jobs))
        for pool in (self._io, self._embedding):
            if pool is not None:
                pool.shutdown(wait=True)
        self.backend.close()


def _warm_up_guard() -> None:
    from thrifty.gateway.cache.guard import warm_up

    warm_up()


def build_backend(
    settings: CacheSettings, on_evict: Callable[[str, str], None] | None = None
) -> Backend:
    if settings.redis_url:
        return RedisStore(
            settings.redis_url,
            settings.redis_prefix,
            settings.max_entries,
            settings.max_bytes,
            settings.ttl_s,
            on_evict=on_evict,
        )
    return MemoryStore(settings.max_entries, settings.max_bytes, on_evict=on_evict)


def storable(reply: dict[str, Any], endpoint: str, streamed: bool) -> dict[str, Any] | None:
    """The answer as it should be stored, or None when it is not worth replaying.

    Only text answers that ended on their own or at max_tokens (part of the key): a tool call
    replays badly, since a streaming client is sent text only. A streamed `completions` answer
    was reassembled in chat shape; it is stored in that endpoint's own shape.
    """
    if endpoint == "embeddings":
        return reply if isinstance(reply.get("data"), list) and reply["data"] else None
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") not in _FINISHED:
            return None
        message = choice.get("message")
        if isinstance(message, dict) and (
            message.get("tool_calls") or message.get("function_call")
        ):
            return None
    if endpoint == "completions" and streamed:
        texts = [
            {
                "index": c.get("index", i),
                "text": (c.get("message") or {}).get("content") or "",
                "logprobs": None,
                "finish_reason": c.get("finish_reason"),
            }
            for i, c in enumerate(choices)
        ]
        return {**reply, "object": "text_completion", "choices": texts}
    return reply
