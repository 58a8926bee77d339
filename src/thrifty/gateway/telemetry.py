"""What `telemetry.*` turns on: the tracer and its exporter, and the JSON request line.

Both are built only when configured; with the defaults this module returns three Nones and the
gateway runs exactly as it would without it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.config import TelemetrySettings
from thrifty.context import RequestContext
from thrifty.gateway.tracing import TRACE_HEADER, Tracer

if TYPE_CHECKING:
    from thrifty.gateway.otlp import OtlpExporter

REQUEST_LOGGER = "thrifty.requests"


def build_telemetry(
    settings: TelemetrySettings,
) -> tuple[Tracer | None, OtlpExporter | None, Callable[[RequestContext], None] | None]:
    tracer = exporter = None
    if settings.otlp_endpoint:
        from thrifty.gateway.otlp import OtlpExporter

        exporter = OtlpExporter(
            settings.otlp_endpoint,
            service_name=settings.service_name,
            interval_s=settings.export_interval_s,
            max_queued=settings.max_queued_traces,
        )
        tracer = Tracer(exporter)
    log_line = JsonRequestLine() if settings.log_format == "json" else None
    return tracer, exporter, log_line


def _usd(nanos: int | None) -> float | None:
    return None if nanos is None else nanos / 1e9


def request_fields(ctx: RequestContext) -> dict[str, Any]:
    """What one request's line says: ids, where it went and why, tokens, money, time, status.
    Never the prompt, the answer, or a key's secret (key_id is the key's public id)."""
    usage = ctx.usage or {}
    ttft = ctx.ttft_s
    cost, baseline = ctx.cost_nanos, ctx.baseline_nanos
    return {
        "ts": datetime.fromtimestamp(ctx.received_at, UTC).isoformat(timespec="milliseconds"),
        "request_id": ctx.id,
        "trace_id": ctx.response_headers.get(TRACE_HEADER),
        "tenant": ctx.tenant,
        "key_id": ctx.key_id,
        "endpoint": ctx.endpoint,
        "model": ctx.model,
        "route": ctx.route,
        "reason": ctx.reason_header,
        "upstream_model": ctx.answered_by.model if ctx.answered_by else None,
        "cache": ctx.cache or None,
        "stream": ctx.stream,
        "status": ctx.status,
        "error_code": ctx.error_code,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cost_usd": _usd(cost),
        "baseline_usd": _usd(baseline),
        # negative: the request cost more than the all-cloud baseline would have
        "saving_usd": None if cost is None or baseline is None else _usd(baseline - cost),
        "latency_ms": round(ctx.latency_s * 1000.0, 3),
        "ttft_ms": None if ttft is None else round(ttft * 1000.0, 3),
        "attempts": len(ctx.attempts),
        "pii": sorted(ctx.pii),  # the kinds found, never the values
    }


class JsonRequestLine:
    """Recorder: one JSON object per request, one line, on stderr (logger thrifty.requests).

    The logger gets its own handler that writes the bare JSON (no level or time prefix) and
    does not propagate, so the lines parse whatever format the rest of the log uses."""

    def __init__(self, stream: Any = None) -> None:
        self.logger = logging.getLogger(REQUEST_LOGGER)
        if not any(getattr(h, "_thrifty_json", False) for h in self.logger.handlers):
            handler = logging.StreamHandler(stream or sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._thrifty_json = True  # type: ignore[attr-defined]
            self.logger.addHandler(handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    def __call__(self, ctx: RequestContext) -> None:
        self.logger.info("%s", orjson.dumps(request_fields(ctx)).decode())
