"""Traces: one span per request, a child per stage, backend attempt and the meter.

Only built when `telemetry.otlp_endpoint` is set; the gateway then routes its stage calls, its
meter and its finish through a `Tracer` (see `Gateway.__init__`), and otherwise never touches
this module: tracing off creates no span object at all.

On the request path a span is a few integers (perf_counter_ns) appended to the request's open
`Trace`; attribute dictionaries are built once, when the request finishes; ids, protobuf
encoding and the HTTP POST happen on the exporter's thread (`thrifty.gateway.otlp`).

Attributes follow the OpenTelemetry GenAI semantic conventions (gen_ai.*) plus thrifty's own
(thrifty.route, thrifty.reason, thrifty.cost_usd, thrifty.saving_usd, ...). Attempts record
their duration only (context.Attempt), so their spans are laid end to end from the moment the
last stage's request half returned.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from thrifty.context import RequestContext

if TYPE_CHECKING:
    from thrifty.backends import Reply
    from thrifty.gateway.stage import Stage

TRACE_HEADER = "x-thrifty-trace-id"

# OTLP SpanKind values (opentelemetry/proto/trace/v1/trace.proto)
INTERNAL, SERVER, CLIENT = 1, 2, 3

_OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
_REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "seed": "gen_ai.request.seed",
}


@dataclass(slots=True)
class SpanRecord:
    """A finished span; `parent` indexes the trace's spans (None: the trace's parent)."""

    name: str
    kind: int
    start_ns: int  # unix time, ns
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the status message of a failed span
    parent: int | None = 0


@dataclass(slots=True)
class TraceRecord:
    """A finished request's spans, the request's own first; what the exporter sends."""

    trace_id: bytes  # 16 bytes
    parent_span_id: bytes | None  # the caller's span (traceparent), 8 bytes
    spans: list[SpanRecord]


@dataclass(slots=True)
class _Open:
    """A request in flight: its trace id and the spans timed so far (perf_counter_ns)."""

    trace_id: bytes
    parent_span_id: bytes | None
    sampled: bool
    offset_ns: int  # unix ns minus perf_counter ns, taken when the trace opened
    handled_ns: int = 0  # when the gateway got the request (intake ends)
    called_ns: int = 0  # when the last request half returned (attempts start)
    stages: list[tuple[str, int, int, str | None, bool]] = field(default_factory=list)
    meter: tuple[int, int] | None = None


class Exporter(Protocol):
    def submit(self, trace: TraceRecord) -> None: ...


def parse_traceparent(value: str | None) -> tuple[bytes, bytes, bool] | None:
    """W3C traceparent -> (trace id, parent span id, sampled); None when absent or invalid."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace_hex, span_hex, flags = parts[:4]
    if len(version) != 2 or version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if len(trace_hex) != 32 or len(span_hex) != 16 or len(flags) != 2:
        return None
    try:
        trace_id, span_id, bits = bytes.fromhex(trace_hex), bytes.fromhex(span_hex), int(flags, 16)
    except ValueError:
        return None
    if not any(trace_id) or not any(span_id):
        return None
    return trace_id, span_id, bool(bits & 1)


class Tracer:
    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self._open: dict[str, _Open] = {}  # by request id, from handle (or refuse) to finish

    # -- the request path ---------------------------------------------------------------------

    def open(self, ctx: RequestContext) -> _Open:
        """Start the request's trace (continuing its traceparent) and name it in the answer."""
        trace = self._open.get(ctx.id)
        if trace is not None:
            return trace
        parent = parse_traceparent(ctx.request_headers.get("traceparent"))
        if parent is None:
            trace_id, parent_id, sampled = _random_bytes(16), None, True
        else:
            trace_id, parent_id, sampled = parent
        now = time.perf_counter_ns()
        trace = _Open(trace_id, parent_id, sampled, time.time_ns() - now, handled_ns=now)
        self._open[ctx.id] = trace
        ctx.response_headers[TRACE_HEADER] = trace_id.hex()
        return trace

    def stage(self, stage: Stage) -> Callable[[RequestContext], Awaitable[Reply | None]]:
        """The stage's request half, timed into the request's trace."""
        on_request = stage.on_request
        name = type(stage).__name__
        traces = self._open
        clock = time.perf_counter_ns

        async def timed(ctx: RequestContext) -> Reply | None:
            start = clock()
            try:
                reply = await on_request(ctx)
            except BaseException as exc:
                trace = traces.get(ctx.id)
                if trace is not None:
                    end = trace.called_ns = clock()
                    trace.stages.append(
                        (name, start, end, getattr(exc, "code", None) or "error", False)
                    )
                raise
            trace = traces.get(ctx.id)
            if trace is not None:  # inline, not a call: this runs for every stage of every request
                end = trace.called_ns = clock()
                trace.stages.append((name, start, end, None, reply is not None))
            return reply

        return timed

    def meter(self, price: Callable[[RequestContext], None]) -> Callable[[RequestContext], None]:
        traces = self._open

        def timed(ctx: RequestContext) -> None:
            start = time.perf_counter_ns()
            try:
                price(ctx)
            finally:
                trace = traces.get(ctx.id)
                if trace is not None:
                    trace.meter = (start, time.perf_counter_ns())

        return timed

    def close(self, ctx: RequestContext) -> None:
        """After the request's records: its spans go to the exporter's queue."""
        trace = self._open.pop(ctx.id, None)
        if trace is None or not trace.sampled:
            return
        self.exporter.submit(_record(ctx, trace, time.perf_counter_ns()))


def _random_bytes(n: int) -> bytes:
    import random  # the process's seeded PRNG, as request ids: no syscall per request

    while True:
        value = random.getrandbits(8 * n).to_bytes(n, "big")
        if any(value):
            return value


# -- what the spans say (built once per request, after it finished) ---------------------------


def _record(ctx: RequestContext, trace: _Open, now_ns: int) -> TraceRecord:
    offset = trace.offset_ns
    started = int(ctx.started * 1e9)  # perf_counter seconds -> ns
    error = ctx.error_code if ctx.status >= 500 else None
    operation = _OPERATIONS.get(ctx.endpoint, ctx.endpoint)
    spans = [
        SpanRecord(
            f"{operation} {ctx.model}",
            SERVER,
            started + offset,
            now_ns + offset,  # after the last byte and the records
            _request_attributes(ctx, operation),
            error,
            parent=None,
        )
    ]
    if trace.handled_ns > started:
        spans.append(
            SpanRecord("intake", INTERNAL, started + offset, trace.handled_ns + offset, {})
        )
    for name, start, end, failed, answered in trace.stages:
        span_name, attributes = _stage_span(name)  # shared: spans are never changed once made
        if answered or failed:
            attributes = dict(attributes)
            if answered:
                attributes["thrifty.answered"] = True
                if ctx.cache:
                    attributes["thrifty.cache"] = ctx.cache
            if failed:
                attributes["error.type"] = failed
        spans.append(
            SpanRecord(span_name, INTERNAL, start + offset, end + offset, attributes, failed)
        )
    at = trace.called_ns or trace.handled_ns
    previous: str | None = None
    for n, attempt in enumerate(ctx.attempts):
        length = int(attempt.latency_s * 1e9)
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": attempt.upstream or "llama.cpp",
            "thrifty.route": attempt.route,
            "thrifty.attempt": n + 1,
            "http.response.status_code": attempt.status,
        }
        if attempt.upstream:
            attributes["thrifty.upstream"] = attempt.upstream
        if previous is not None:
            attributes["thrifty.retry" if previous == attempt.route else "thrifty.fallback"] = True
        failed = attempt.error if attempt.status != 200 else None
        if failed:
            attributes["error.type"] = failed
        spans.append(
            SpanRecord(
                f"attempt {attempt.route}",
                CLIENT,
                at + offset,
                at + length + offset,
                attributes,
                failed,
            )
        )
        at += length
        previous = attempt.route
    if trace.meter is not None:
        start, end = trace.meter
        attributes = {}
        if ctx.cost_nanos is not None:
            attributes["thrifty.cost_usd"] = ctx.cost_nanos / 1e9
        spans.append(SpanRecord("meter", INTERNAL, start + offset, end + offset, attributes))
    return TraceRecord(trace.trace_id, trace.parent_span_id, spans)


_STAGE_SPANS: dict[str, tuple[str, dict[str, Any]]] = {}


def _stage_span(name: str) -> tuple[str, dict[str, Any]]:
    """A stage's span name and attributes, made once per stage."""
    found = _STAGE_SPANS.get(name)
    if found is None:
        found = _STAGE_SPANS[name] = (f"stage {name}", {"thrifty.stage": name})
    return found


def _request_attributes(ctx: RequestContext, operation: str) -> dict[str, Any]:
    route = ctx.route
    target = ctx.answered_by
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": ctx.model,
        "thrifty.request_id": ctx.id,
        "thrifty.tenant": ctx.tenant,
        "thrifty.route": route,
        "thrifty.reason": ctx.reason_header,
        "thrifty.stream": ctx.stream,
        "http.response.status_code": ctx.status,
    }
    if route == "cache":
        attributes["gen_ai.system"] = "thrifty.cache"
    elif target is not None:
        attributes["gen_ai.system"] = target.upstream or "llama.cpp"
        attributes["gen_ai.response.model"] = target.model
    for name, key in _REQUEST_PARAMS.items():
        value = ctx.body.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[key] = value
    usage = ctx.usage
    if usage:
        for name, key in (
            ("prompt_tokens", "gen_ai.usage.input_tokens"),
            ("completion_tokens", "gen_ai.usage.output_tokens"),
        ):
            value = usage.get(name)
            if isinstance(value, int):
                attributes[key] = value
    reply = ctx.reply
    if isinstance(reply, dict):
        if isinstance(reply.get("id"), str):
            attributes["gen_ai.response.id"] = reply["id"]
        reasons = [
            c.get("finish_reason")
            for c in reply.get("choices") or ()
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
        ]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
    if ctx.cache:
        attributes["thrifty.cache"] = ctx.cache
    if ctx.pii:
        attributes["thrifty.pii"] = sorted(ctx.pii)  # the kinds found, never the values
    if ctx.cost_nanos is not None:
        attributes["thrifty.cost_usd"] = ctx.cost_nanos / 1e9
    if ctx.baseline_nanos is not None:
        attributes["thrifty.baseline_usd"] = ctx.baseline_nanos / 1e9
        if ctx.cost_nanos is not None:  # negative: the request cost more than all-cloud
            attributes["thrifty.saving_usd"] = (ctx.baseline_nanos - ctx.cost_nanos) / 1e9
    if ctx.status >= 400:  # as HTTP's conventions: the status when no code says more
        attributes["error.type"] = ctx.error_code or str(ctx.status)
    return attributes
