"""Capture for distillation: cloud answers of opted-in tenants, kept as training samples.

Off by default (`distill.capture_tenants` empty): then `build_capture` returns None and the
gateway does not hold the stage, so the hot path does no work at all. On, it is one stage:

- on the way in (last, when the targets are final) it asks for a streamed answer to be
  reassembled (`ctx.keep_reply`) when the tenant opted in and a target may be captured;
- when finished it queues a `Sample` for the batching writer when a captured route answered with
  200: the messages exactly as the upstream received them, and the answer's text.

Privacy comes first. A request with personal data is never captured unless it was masked before it
left; then the masked messages are stored, and the answer as the cloud wrote it, with its
placeholders (`ctx.reply` is the model's answer; values are restored only in what leaves). As a
last line, a sample whose answer still shows personal data to the detector is dropped: nothing
stored carries any it can see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from thrifty.backends import Reply
from thrifty.config import Settings
from thrifty.context import RequestContext
from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.stage import Stage
from thrifty.store.samples import Sample, SampleLog

logger = logging.getLogger(__name__)


class SampleCapture(Stage):
    def __init__(
        self,
        settings: Settings,
        detector: PIIDetector,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        distill = settings.distill
        self.all_tenants = "*" in distill.capture_tenants
        self.tenants = frozenset(distill.capture_tenants)
        self.routes = frozenset(distill.capture_routes)  # empty: every upstream route
        self.detector = detector
        store = settings.store
        self.log = SampleLog(
            settings.database_url,
            batch_size=store.batch_size,
            flush_interval_s=store.flush_interval_s,
            max_buffered=store.max_buffered_rows,
            on_drop=on_drop,
        )
        self.dropped_pii = 0  # answers that still showed personal data

    def wanted(self, tenant: str) -> bool:
        return self.all_tenants or tenant in self.tenants

    def captures(self, route: str, upstream: str | None) -> bool:
        if route == "cache":
            return False
        return route in self.routes if self.routes else upstream is not None

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        """Have a streamed answer reassembled when it may be captured."""
        if (
            ctx.stream
            and self.wanted(ctx.tenant)
            and ctx.endpoint == "chat"
            and any(self.captures(t.route, t.upstream) for t in ctx.targets)
        ):
            ctx.keep_reply = True
        return None

    def on_finish(self, ctx: RequestContext) -> None:
        """Queue the sample of a successful answer from a captured route."""
        if not self.wanted(ctx.tenant):
            return
        by = ctx.answered_by
        if ctx.status != 200 or by is None or ctx.reply is None or ctx.endpoint != "chat":
            return
        if ctx.route != by.route or not self.captures(by.route, by.upstream):
            return
        mapping = ctx.pii_mapping
        if ctx.pii and mapping is None:
            return  # personal data that was not masked: never stored
        messages = ctx.body.get("messages")
        answer = _answer_text(ctx.reply)
        if not isinstance(messages, list) or answer is None:
            return
        if self.detector.kinds_in(answer):
            self.dropped_pii += 1
            logger.debug("request %s: not captured, its answer shows personal data", ctx.id)
            return
        reasoning = _answer_text(ctx.reply, "reasoning_content")
        if reasoning is not None and self.detector.kinds_in(reasoning):
            reasoning = None  # the answer alone is still a sample; the reasoning is not kept
        self.log.append(
            Sample(
                id=ctx.id,
                ts=ctx.received_at,
                tenant=ctx.tenant,
                route=by.route,
                upstream_model=by.model,
                messages=messages,
                answer=answer,
                pii=ctx.pii,
                masked=mapping is not None,
                reasoning=reasoning,
            )
        )

    def open(self) -> None:
        self.log.open()

    def close(self) -> None:
        self.log.close()


def build_capture(
    settings: Settings, detector: PIIDetector, on_drop: Callable[[int], None] | None = None
) -> SampleCapture | None:
    """The capture, or None when no tenant opted in."""
    if not settings.distill.capture_tenants:
        return None
    return SampleCapture(settings, detector, on_drop)


def _answer_text(payload: dict[str, Any], key: str = "content") -> str | None:
    """The first choice's text (``content``, or e.g. ``reasoning_content``)."""
    choices = payload.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get(key) if isinstance(message, dict) else None
    return content if isinstance(content, str) else None
