"""The OTLP/HTTP trace exporter: finished traces in, protobuf batches out, on its own thread.

`submit` is a deque append (the event loop never encodes or waits on the network). The thread
wakes every `interval_s` — not per trace: waking a thread per request costs more than the
spans — encodes what is queued as one `ExportTraceServiceRequest` and POSTs it to
`<endpoint>/v1/traces`. A collector that is down loses the batch (logged once per outage), never
the gateway's time; more than `max_queued` waiting traces are dropped and counted.

No dependency: the protobuf is written by `encode` (see there why); the tests decode it with
opentelemetry-proto's own classes.
"""

from __future__ import annotations

import collections
import logging
import random
import struct
import threading
import urllib.request
from collections.abc import Sequence
from typing import Any

from thrifty.gateway.tracing import TraceRecord

logger = logging.getLogger(__name__)

_MAX_BATCH = 512  # traces per POST


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
    """The batch as a serialized ExportTraceServiceRequest (span ids drawn here, off the path).

    Protobuf's wire format written by hand: building the same message with opentelemetry-proto's
    classes costs ~100 us of CPU per request's trace, this a fraction of it (the tests decode
    every byte with those classes). Field numbers: opentelemetry/proto/trace/v1/trace.proto,
    common/v1/common.proto, collector/trace/v1/trace_service.proto.
    """
    draw = random.Random()  # seeded from the OS once per batch
    spans: list[bytes] = []
    append = spans.append
    for trace in batch:
        count = len(trace.spans)
        drawn = draw.randbytes(8 * count)  # every span id of the trace in one call
        ids = [drawn[i : i + 8] for i in range(0, 8 * count, 8)]
        if _ZERO_ID in ids:  # a span id is never zero
            ids = [i if i != _ZERO_ID else b"\x00" * 7 + b"\x01" for i in ids]
        trace_field = b"\x0a\x10" + trace.trace_id  # Span.trace_id = 1
        for n, record in enumerate(trace.spans):
            if record.parent is None:
                parent = trace.parent_span_id
                flags = _REMOTE if parent is not None else _LOCAL
            else:
                parent, flags = ids[record.parent], _LOCAL
            start_ns = record.start_ns
            payload = b"".join(
                (
                    trace_field,
                    b"\x12\x08",  # span_id = 2
                    ids[n],
                    b"\x22\x08" if parent else b"",  # parent_span_id = 4
                    parent or b"",
                    _body(record.name, record.kind, record.attributes),  # 5, 6 and 9
                    # start_time_unix_nano = 7, end_time_unix_nano = 8 (fixed64)
                    _TIMES(0x39, start_ns, 0x41, max(record.end_ns, start_ns)),
                    # status = 15: message = 2, code = 3 (ERROR = 2)
                    b""
                    if record.error is None
                    else _message(0x7A, _string(0x12, record.error) + b"\x18\x02"),
                    flags,
                )
            )
            append(b"\x12" + _varint(len(payload)) + payload)  # ScopeSpans.spans = 2
    scope = _message(0x0A, _string(0x0A, "thrifty"))  # ScopeSpans.scope = 1: name = 1
    resource = _message(0x0A, _attribute(0x0A, "service.name", service_name))
    scope_spans = _message(0x12, scope + b"".join(spans))  # ResourceSpans.scope_spans = 2
    return _message(0x0A, resource + scope_spans)  # resource_spans = 1


_TIMES = struct.Struct("<BQBQ").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_ATTRIBUTES: dict[tuple[int, str, Any], bytes] = {}  # (tag, key, value) -> encoded, for repeats
_NAMES: dict[tuple[str, int], bytes] = {}
_BODIES: dict[tuple[Any, ...], bytes] = {}  # (name, kind, attributes) -> encoded, for repeats
_ZERO_ID = bytes(8)
# flags = 16 (fixed32): bit 8 "has is_remote", bit 9 "is remote"
_LOCAL = b"\x85\x01" + _fixed32(0x100)
_REMOTE = b"\x85\x01" + _fixed32(0x300)


def _body(name: str, kind: int, attributes: dict[str, Any]) -> bytes:
    """A span's name, kind and attributes (fields 5, 6, 9). A stage's span says the same every
    request (its name, `thrifty.stage`): encoded once, when every value is a flag or a name."""
    if len(attributes) > 3:  # a request's or an attempt's span: numbers, ids, never repeated
        return _name(name, kind) + b"".join(
            _attribute(0x4A, key, value) for key, value in attributes.items()
        )
    key = (name, kind, *attributes.items())
    found = _BODIES.get(key)
    if found is None:
        found = _name(name, kind) + b"".join(_attribute(0x4A, k, v) for k, v in attributes.items())
        if all(
            isinstance(v, bool) or (isinstance(v, str) and len(v) < 64) for v in attributes.values()
        ):
            if len(_BODIES) > 4096:
                _BODIES.clear()
            _BODIES[key] = found
    return found


def _name(name: str, kind: int) -> bytes:
    """A span's name and kind fields: the same few (stage names, intake, meter) every request."""
    found = _NAMES.get((name, kind))
    if found is None:
        found = _string(0x2A, name) + b"\x30" + _varint(kind)
        if len(_NAMES) > 4096:
            _NAMES.clear()
        _NAMES[(name, kind)] = found
    return found


_SMALL = [bytes((n,)) for n in range(0x80)]


def _varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64  # int64 as protobuf writes it: ten bytes of two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _message(tag: int, payload: bytes) -> bytes:
    return _SMALL[tag] + _varint(len(payload)) + payload


def _string(tag: int, text: str) -> bytes:
    return _message(tag, text.encode())


_KEYS: dict[str, bytes] = {}  # attribute key -> its encoded field (KeyValue.key = 1)
# values new in every request: caching them would only churn the cache
_UNIQUE = frozenset({"thrifty.request_id", "gen_ai.response.id"})


def _attribute(tag: int, key: str, value: Any) -> bytes:
    """A KeyValue (key = 1, value = 2) as field `tag`; strings and flags repeat, so they are
    encoded once."""
    cacheable = value.__class__ is bool or (
        value.__class__ is str and len(value) < 64 and key not in _UNIQUE
    )
    if cacheable:
        found = _ATTRIBUTES.get((tag, key, value))
        if found is not None:
            return found
    encoded_key = _KEYS.get(key)
    if encoded_key is None:
        encoded_key = _string(0x0A, key)
        if len(_KEYS) < 4096:
            _KEYS[key] = encoded_key
    any_value = _any_value(value)
    inner = encoded_key + b"\x12" + _varint(len(any_value)) + any_value
    encoded = _SMALL[tag] + _varint(len(inner)) + inner
    if cacheable:
        if len(_ATTRIBUTES) > 4096:
            _ATTRIBUTES.clear()
        _ATTRIBUTES[(tag, key, value)] = encoded
    return encoded


def _any_value(value: Any) -> bytes:
    """AnyValue: string = 1, bool = 2, int = 3, double = 4, array = 5 (ArrayValue.values = 1)."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, list | tuple):
        return _message(0x2A, b"".join(_message(0x0A, _any_value(v)) for v in value))
    return _string(0x0A, str(value))
