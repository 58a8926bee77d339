"""The OTLP/HTTP trace exporter: finished traces in, protobuf batches out, on its own thread.

`submit` is a deque append (the event loop never encodes or waits on the network). The thread
wakes every `interval_s` — not per trace: waking a thread per request costs more than the
spans — encodes what is queued as one `ExportTraceServiceRequest` and POSTs it to
`<endpoint>/v1/traces`. A collector that is down loses the batch (logged once per outage), never
the gateway's time; more than `max_queued` waiting traces are dropped and counted.

opentelemetry-proto (the `telemetry` extra) is imported on the thread, when the first batch is
encoded; `check_installed` refuses a start without it.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import urllib.request
from collections.abc import Sequence
from typing import Any

from thrifty.gateway.tracing import TraceRecord

logger = logging.getLogger(__name__)

_MAX_BATCH = 512  # traces per POST


def check_installed() -> None:
    from thrifty.extras import install_hint, installed

    if not installed("opentelemetry.proto"):
        raise RuntimeError(
            "telemetry.otlp_endpoint needs the telemetry extra: " + install_hint("telemetry")
        )


class OtlpExporter:
    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str = "thrifty",
        interval_s: float = 1.0,
        max_queued: int = 4096,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = endpoint.rstrip("/") + "/v1/traces"
        self.service_name = service_name
        self.interval_s = interval_s
        self.max_queued = max_queued
        self.timeout_s = timeout_s
        self._queue: collections.deque[TraceRecord] = collections.deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._failing = False
        self.dropped = 0
        self.exported = 0

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="otlp-exporter", daemon=True)
            self._thread.start()

    def submit(self, trace: TraceRecord) -> None:
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append(trace)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (waiting up to `timeout_s`), then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stop = True
        self._wake.set()
        thread.join(timeout_s)
        self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(_MAX_BATCH, len(self._queue)))]
                self._send(batch)
            if self._stop:
                return

    def _send(self, batch: Sequence[TraceRecord]) -> None:
        try:
            request = urllib.request.Request(
                self.url,
                data=encode(batch, self.service_name),
                headers={"content-type": "application/x-protobuf"},
                method="POST",
            )
            # the stdlib client: this thread blocks, the event loop never does; an HTTP error
            # status raises
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except Exception as exc:  # the collector's trouble is never the gateway's
            self.dropped += len(batch)
            if not self._failing:
                logger.warning("sending traces to %s failed: %s", self.url, exc)
            self._failing = True
            return
        if self._failing:
            logger.info("sending traces to %s works again", self.url)
        self._failing = False
        self.exported += len(batch)


def encode(batch: Sequence[TraceRecord], service_name: str) -> bytes:
    """The batch as a serialized ExportTraceServiceRequest (span ids drawn here, off the path)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags, Status

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _set(resource_spans.resource.attributes, {"service.name": service_name})
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "thrifty"
    draw = random.Random()  # seeded from the OS once per batch
    for trace in batch:
        ids = [(draw.getrandbits(64) or 1).to_bytes(8, "big") for _ in trace.spans]
        for n, record in enumerate(trace.spans):
            span = scope_spans.spans.add()
            span.trace_id = trace.trace_id
            span.span_id = ids[n]
            parent = trace.parent_span_id if record.parent is None else ids[record.parent]
            if parent:
                span.parent_span_id = parent
            span.name = record.name
            span.kind = record.kind  # type: ignore[assignment,unused-ignore]
            span.start_time_unix_nano = record.start_ns
            span.end_time_unix_nano = max(record.end_ns, record.start_ns)
            _set(span.attributes, record.attributes)
            if record.error is not None:
                span.status.code = Status.STATUS_CODE_ERROR
                span.status.message = record.error
            span.flags = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | (
                SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
                if record.parent is None and trace.parent_span_id
                else 0
            )
    return bytes(request.SerializeToString())


def _set(target: Any, attributes: dict[str, Any]) -> None:
    for key, value in attributes.items():
        kv = target.add()
        kv.key = key
        _value(kv.value, value)


def _value(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list | tuple):
        for item in value:
            _value(target.array_value.values.add(), item)
    else:
        target.string_value = str(value)
