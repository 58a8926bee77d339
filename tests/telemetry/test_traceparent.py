"""W3C traceparent parsing, and a caller's "not sampled" being honoured."""

from __future__ import annotations

import pytest

from thrifty.context import RequestContext
from thrifty.gateway.tracing import TRACE_HEADER, Tracer, TraceRecord, parse_traceparent

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_valid_traceparent() -> None:
    parsed = parse_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert parsed == (bytes.fromhex(TRACE), bytes.fromhex(SPAN), True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == (
        bytes.fromhex(TRACE),
        bytes.fromhex(SPAN),
        False,
    )
    # a later version may append fields: the first four still read
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-extra") is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}x-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
    ],
)
def test_invalid_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert parse_traceparent(value) is None


class _Collect:
    def __init__(self) -> None:
        self.traces: list[TraceRecord] = []

    def submit(self, trace: TraceRecord) -> None:
        self.traces.append(trace)


def _ctx(traceparent: str | None) -> RequestContext:
    headers = {"traceparent": traceparent} if traceparent else {}
    return RequestContext(None, {}, "m", False, request_headers=headers)  # type: ignore[arg-type]


def test_unsampled_caller_keeps_its_trace_id_but_nothing_is_exported() -> None:
    exporter = _Collect()
    tracer = Tracer(exporter)
    ctx = _ctx(f"00-{TRACE}-{SPAN}-00")
    tracer.open(ctx)
    assert ctx.response_headers[TRACE_HEADER] == TRACE
    tracer.close(ctx)
    assert exporter.traces == []
    sampled = _ctx(None)
    tracer.open(sampled)
    tracer.close(sampled)
    (trace,) = exporter.traces
    assert trace.trace_id.hex() == sampled.response_headers[TRACE_HEADER] != TRACE
    assert trace.parent_span_id is None
    assert tracer._open == {}  # nothing left behind once the request finished
