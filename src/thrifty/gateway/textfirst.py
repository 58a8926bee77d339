"""Streams that begin with text: no chunk that carries nothing reaches the client.

Engines open a stream with a chunk that only names the role (`{"role": "assistant", "content":
null}`) and some send chunks with empty content while they think; answer moderation may hold
a chunk's text back for the next one. Clients show each chunk as it comes (LangChain yields one
message chunk per event), so those arrive as empty messages before the answer starts. Here a
chunk whose choices carry nothing (no text, no tool call, no finish reason, no logprobs) is not
sent, and a role it named travels with that choice's first chunk that carries something.

Parsing every event would cost the streaming path its speed; the byte check `may_carry_nothing`
says which events need looking at (only those with an empty or null text field, or a role).
"""

from __future__ import annotations

import re
from typing import Any

_SUSPECT = re.compile(rb'"(?:content|text)"\s*:\s*(?:""|null)|"role"\s*:')
_COMPACT = (b'"content":""', b'"content":null', b'"role":', b'"text":""', b'"text":null')
_QUIET: tuple[object, ...] = (None, "", [], {})  # values that say nothing


def may_carry_nothing(data: bytes) -> bool:
    """Whether the event might carry nothing (else it surely carries text and is sent as is)."""
    for marker in _COMPACT:  # compact JSON, what engines and thrifty itself write
        if marker in data:
            return True
    return b'": ' in data and _SUSPECT.search(data) is not None  # spaced JSON: look closer


def carries_something(choice: dict[str, Any]) -> bool:
    if choice.get("finish_reason") is not None or choice.get("logprobs") not in _QUIET:
        return True
    if choice.get("text") not in _QUIET:  # /v1/completions
        return True
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return False
    for key, value in delta.items():  # noqa: SIM110 (a loop, not any(<generator>): runs per chunk)
        if key != "role" and value not in _QUIET:
            return True
    return False


class TextFirst:
    """Per stream: drops the chunks that carry nothing; moves their role to the next one."""

    def __init__(self) -> None:
        self._roles: dict[int, str] = {}  # per choice: a role named in a dropped chunk

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk to send (a new object when changed, else `chunk` itself), or None for one
        that carries nothing."""
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return chunk  # the usage chunk, or something of the server's own: as it came
        if len(choices) == 1 and not self._roles:  # most chunks: one choice, no role waiting
            only = choices[0]
            if not isinstance(only, dict) or carries_something(only):
                return chunk
        kept = []
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if carries_something(choice):
                role = self._roles.pop(index, None)
                if role is not None and isinstance(delta, dict) and "role" not in delta:
                    choice = {**choice, "delta": {"role": role, **delta}}
                    changed = True
                kept.append(choice)
            else:
                changed = True
                if isinstance(delta, dict) and isinstance(delta.get("role"), str):
                    self._roles[index] = delta["role"]
        if not kept:
            return None
        return {**chunk, "choices": kept} if changed else chunk
