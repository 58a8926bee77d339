"""The one server-sent-events reader: the gateway's upstream client, `thrifty chat` and the load
generator all read streams through it.

It follows the WHATWG event-stream rules that matter for OpenAI-style streams: lines end in
`\\n`, `\\r\\n` or `\\r` (even split across reads); a line starting with `:` is a comment; several
`data:` lines make one event, joined with `\\n`; an empty line ends the event; one space after
the colon is dropped. Each event's data is kept as bytes: the gateway decides whether it must
parse it (see `needs_parse`), and parses it once.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

DONE = b"[DONE]"


class SSEDecoder:
    """Incremental: `feed` bytes as they arrive, get the data of every event they completed."""

    __slots__ = ("_cr", "_data", "_pending")

    def __init__(self) -> None:
        self._pending = b""  # an incomplete last line
        self._data: list[bytes] = []  # the data lines of the event being read
        self._cr = False  # the previous read ended in \r: a \n starting this one belongs to it

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._cr = chunk.endswith(b"\r")
        text = self._pending + chunk
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = text.split(b"\n")
        self._pending = lines.pop()
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:  # blank line: the event is complete
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # comments (":…"), `event:`, `id:` and `retry:` carry nothing an OpenAI stream needs
        return events

    def close(self) -> list[bytes]:
        """The event a stream ended without its blank line (some servers do), if any."""
        events = self.feed(b"\n\n") if self._pending or self._data else []
        self._pending = b""
        return events


async def iter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """Events grouped by network read: what arrived together can leave in one write."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        events = decoder.feed(chunk)
        if events:
            yield events
    tail = decoder.close()
    if tail:
        yield tail


def needs_parse(data: bytes) -> bool:
    """Whether an OpenAI stream event may carry usage, a finish reason or an error.

    Compact JSON is checked without parsing: `"usage":null` and `"finish_reason":null` say the
    event carries neither. Anything else that names those keys — other spacing, another value —
    is parsed. A quote inside a JSON string is escaped, so these byte patterns only match keys.
    """
    if b'"error"' in data:
        return True
    usage = data.count(b'"usage"')
    if usage and usage != data.count(b'"usage":null'):
        return True
    finish = data.count(b'"finish_reason"')
    return bool(finish) and finish != data.count(b'"finish_reason":null')
