"""Privacy: find personal data anywhere in a request, and keep it from clouds it must not reach.

Two stages around the routing stages:

- `PIIScan` runs first and records in `ctx.pii` the kinds found anywhere in the body: every
  string and number at any depth, keys included, and values split across two strings
  (`pii_request.scan_request`). Content no text scan can clear (images, audio, files, base64
  blobs) adds the pseudo-kind `unscannable` unless `privacy.unscannable: allow`; a scan that
  raises or runs past `privacy.scan_timeout_ms` adds `scan_failed`. Both fail closed.
- `PrivacyGuard` runs after the route is chosen, whoever chose it (router rule or explicit
  model name), and enforces `privacy.on_pii` on the final target list, fallbacks included:
  `local` drops every cloud target (the request is answered locally or not at all), `mask`
  replaces the values in every free-text field with typed placeholders before they leave and
  restores them in every field of the answer, `reject` refuses the request, `allow` lets it
  through. A request that is unscannable, whose scan failed, or that still carries personal
  data once masked (in a field sent verbatim: a function name, an enum value, a key) is kept
  local whatever `on_pii` says (or refused, under `reject`).

The gateway's own model calls that carry a client's text (the moderation self-check's judge) go
through `GuardedCaller`: the same scan and the same guard, so a judge named on a cloud never
reads personal data: the local model judges such a request, or no model does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import orjson

from thrifty.backends import Registry, Reply, StreamStats
from thrifty.config import PrivacySettings
from thrifty.context import RequestContext
from thrifty.errors import RouteRejected
from thrifty.gateway.call import Caller
from thrifty.gateway.pii import PIIDetector, redact
from thrifty.gateway.pii_request import (
    SCAN_FAILED,
    UNSCANNABLE,
    ScanTimeout,
    StreamRestorer,
    mask_request,
    scan_request,
    unmask_tree,
)
from thrifty.gateway.stage import Stage

logger = logging.getLogger(__name__)

__all__ = [
    "GuardedCaller",
    "GuardedCheck",
    "PIIScan",
    "PrivacyGuard",
    "StreamRestorer",
    "unmask_payload",
    "unscanned_model_name",
]
_FAIL_CLOSED = frozenset({UNSCANNABLE, SCAN_FAILED})


class PIIScan(Stage):
    def __init__(
        self,
        detector: PIIDetector,
        settings: PrivacySettings | None = None,
        known: frozenset[str] = frozenset(),
    ) -> None:
        settings = settings or PrivacySettings()
        self.detector = detector
        self.known = known  # model names this gateway serves: configured, not the user's data
        self.unscannable = settings.unscannable
        self.timeout_s = settings.scan_timeout_ms / 1000

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        found = scan_kinds(
            self.detector, ctx.body, self.timeout_s, self.unscannable, ctx.id, self.known
        )
        if found:
            ctx.pii = frozenset(found)
            named = found - _FAIL_CLOSED and isinstance(ctx.model, str)
            if named and self.detector.kinds_in(ctx.model):
                # no model is named like that (the answer is a 404), and the name is stored in
                # the request and audit logs: keep the personal data out of them
                ctx.model = redact(self.detector, ctx.model)
        return None


def scan_kinds(
    detector: PIIDetector,
    body: dict[str, Any],
    timeout_s: float,
    unscannable: str,
    request_id: str,
    known: frozenset[str] = frozenset(),
) -> set[str]:
    """The kinds in `body`, with the pseudo-kinds that keep it local; never raises."""
    try:
        result = scan_request(detector, body, time.perf_counter() + timeout_s, known)
    except ScanTimeout:
        logger.warning("request %s: the personal-data scan ran out of time; kept local", request_id)
        return {SCAN_FAILED}
    except Exception:  # a scan that breaks must not let the request out unscanned
        logger.exception("request %s: the personal-data scan failed; kept local", request_id)
        return {SCAN_FAILED}
    found = set(result.kinds)
    if result.unscannable and unscannable == "local":
        found.add(UNSCANNABLE)
    return found


def unscanned_model_name(
    detector: PIIDetector, known: frozenset[str]
) -> Callable[[RequestContext], None]:
    """A recorder that runs before the others (request log, audit, JSON log, trace): a request
    that ended before the scan (unreadable, unauthenticated, too large, blocked by moderation)
    asked for a model name nobody read; one carrying personal data is not kept as written."""

    def check(ctx: RequestContext) -> None:
        model = ctx.model
        if model in known or ctx.pii or not model:
            return  # a served name, or one the scan read (and redacted when it had to)
        if detector.kinds_in(model):
            ctx.model = redact(detector, model)

    return check


class PrivacyGuard(Stage):
    def __init__(
        self, settings: PrivacySettings, registry: Registry, detector: PIIDetector
    ) -> None:
        self.on_pii = settings.on_pii
        self.registry = registry
        self.detector = detector

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if not ctx.pii or not any(t.upstream is not None for t in ctx.targets):
            return None
        kinds = "+".join(sorted(ctx.pii))
        action = "mask" if ctx.mask_pii else self.on_pii
        if ctx.pii & _FAIL_CLOSED or (action == "mask" and ctx.endpoint == "embeddings"):
            # an embedding of placeholders is not the embedding asked for: keep the text local
            action = "reject" if action == "reject" else "local"
        original = ctx.body
        if action == "allow":
            return None
        if action == "mask":
            if self._mask(ctx):
                ctx.notes.append(f"pii={kinds} masked")
                return None
            action = "local"  # something the masker could not replace: fail closed
            ctx.body, ctx.pii_mapping = original, None
        if action == "reject":
            raise RouteRejected(
                f"the request carries personal data ({kinds}) and its route leaves this site"
            )
        local = [t for t in ctx.targets if t.upstream is None]
        if not local:
            target = self.registry.resolve("local", ctx.endpoint)
            if target is None:
                raise RouteRejected(
                    f"the request carries personal data ({kinds}); it may only be answered "
                    "locally, and no local model is configured"
                )
            local = [target]
        ctx.targets = local
        ctx.notes.append(f"pii={kinds} -> local only")
        return None

    # the answer halves: masked values go back where they were

    def on_reply(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        if not ctx.pii_mapping:
            return payload
        restored = orjson.loads(orjson.dumps(payload))  # ctx.reply keeps the masked answer
        unmask_payload(restored, ctx.pii_mapping)
        return restored

    def on_stream(self, ctx: RequestContext) -> StreamRestorer | None:
        return StreamRestorer(ctx.pii_mapping) if ctx.pii_mapping else None

    def _mask(self, ctx: RequestContext) -> bool:
        """Mask in place; False when the masked request still carries personal data."""
        try:
            body, mapping = mask_request(self.detector, ctx.body)
            # a value in a verbatim field, or one that shows only once JSON escapes are decoded
            left = scan_request(self.detector, body).kinds
        except Exception:
            logger.exception("request %s: masking failed; kept local", ctx.id)
            return False
        ctx.body = body
        ctx.pii_mapping = mapping
        return not left


def unmask_payload(payload: dict[str, Any], mapping: dict[str, str]) -> None:
    """Restore masked values in a whole answer, in place: every string at any depth (content,
    reasoning_content, refusal, tool-call arguments, legacy text)."""
    unmask_tree(payload, mapping)


# The kinds the client's request carries, while its self-check runs (`GuardedCheck`).
_CLIENT_PII: ContextVar[frozenset[str]] = ContextVar("thrifty_client_pii", default=frozenset())


class GuardedCheck:
    """Wraps a self-check (`SelfCheck`): while it runs, its calls through `GuardedCaller` know
    what personal data the client's request carries."""

    def __init__(self, check: Callable[[str, RequestContext], Awaitable[str | None]]) -> None:
        self.check = check

    async def __call__(self, text: str, ctx: RequestContext) -> str | None:
        token = _CLIENT_PII.set(ctx.pii)
        try:
            return await self.check(text, ctx)
        finally:
            _CLIENT_PII.reset(token)


class GuardedCaller(Caller):
    """A caller for the gateway's own calls that carry a client's text (the self-check judge).

    Each request is scanned, and carries whatever the client's request carried (its text is the
    client's, joined so that a value split across two messages no longer shows as split). With
    personal data it is answered locally or not at all: `on_pii: mask` keeps it local too (no
    masking of a judge's text), `reject` and a missing local model leave the judge out (the
    check then lets the request through, as when its judge is down), `allow` lets it go.
    It shares the gateway caller's circuit breakers and retries.
    """

    def __init__(
        self, caller: Caller, scan: PIIScan, settings: PrivacySettings, registry: Registry
    ) -> None:
        super().__init__(caller.breakers, caller.retries, on_retry=caller.on_retry)
        self.sleep = caller.sleep
        self.scan = scan
        on_pii = "local" if settings.on_pii == "mask" else settings.on_pii
        self.guard = PrivacyGuard(
            settings.model_copy(update={"on_pii": on_pii}), registry, scan.detector
        )

    async def complete(self, ctx: RequestContext) -> Reply:
        await self._guard(ctx)
        return await super().complete(ctx)

    async def stream(
        self, ctx: RequestContext, stats: StreamStats
    ) -> tuple[list[bytes] | None, AsyncIterator[list[bytes]]]:
        await self._guard(ctx)
        return await super().stream(ctx, stats)

    async def _guard(self, ctx: RequestContext) -> None:
        ctx.mask_pii = False
        await self.scan.on_request(ctx)
        ctx.pii |= _CLIENT_PII.get()
        await self.guard.on_request(ctx)
