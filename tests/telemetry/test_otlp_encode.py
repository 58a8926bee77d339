"""The hand-written OTLP protobuf, decoded by opentelemetry-proto's own classes."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from thrifty.gateway.otlp import encode
from thrifty.gateway.tracing import CLIENT, SERVER, SpanRecord, TraceRecord

ATTRIBUTES = {
    "text": "一个问题 and text",
    "long": "x" * 300,  # not cached: longer than the cache's strings
    "flag": True,
    "off": False,
    "count": 12345678901,
    "negative": -3,
    "money": -0.000125,
    "list": ["stop", "length"],
}


def _decode(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return request


def _attributes(span: Span) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [v.string_value for v in kv.value.array_value.values]
        else:
            out[kv.key] = getattr(kv.value, kind)
    return out


def test_every_field_and_value_kind_round_trips() -> None:
    trace_id, parent = bytes(range(1, 17)), bytes(range(20, 28))
    spans = [
        SpanRecord("chat 模型", SERVER, 1_700_000_000_000_000_000, 1_700_000_000_500_000_000,
                   ATTRIBUTES, "upstream_error", parent=None),
        SpanRecord("attempt local", CLIENT, 1_700_000_000_100_000_000, 1_700_000_000_000_000_000,
                   {"flag": True}),
    ]  # fmt: skip
    for _ in range(2):  # the second time from the caches
        request = _decode(encode([TraceRecord(trace_id, parent, spans)], "svc"))
        (resource_spans,) = request.resource_spans
        assert resource_spans.resource.attributes[0].key == "service.name"
        assert resource_spans.resource.attributes[0].value.string_value == "svc"
        (scope_spans,) = resource_spans.scope_spans
        assert scope_spans.scope.name == "thrifty"
        root, child = scope_spans.spans
        assert root.trace_id == child.trace_id == trace_id
        assert root.parent_span_id == parent  # the caller's span
        assert child.parent_span_id == root.span_id != parent
        assert len(root.span_id) == 8 and any(root.span_id)
        assert root.name == "chat 模型" and root.kind == Span.SPAN_KIND_SERVER
        assert child.kind == Span.SPAN_KIND_CLIENT
        assert root.start_time_unix_nano == 1_700_000_000_000_000_000
        assert root.end_time_unix_nano == 1_700_000_000_500_000_000
        assert child.end_time_unix_nano == child.start_time_unix_nano  # never before its start
        assert _attributes(root) == ATTRIBUTES
        assert root.status.code == Status.STATUS_CODE_ERROR
        assert root.status.message == "upstream_error"
        assert child.status.code == Status.STATUS_CODE_UNSET
        assert root.flags == 0x300  # its parent is remote
        assert child.flags == 0x100


def test_a_new_trace_has_no_parent() -> None:
    spans = [SpanRecord("chat m", SERVER, 1, 2, {}, parent=None)]
    request = _decode(encode([TraceRecord(b"\x01" * 16, None, spans)] * 3, "svc"))
    decoded = request.resource_spans[0].scope_spans[0].spans
    assert len(decoded) == 3
    assert all(s.parent_span_id == b"" and s.flags == 0x100 for s in decoded)
