"""What a function of a long text gave lately, looked up by the text's digest.

A chat resends its whole history and its system prompt on every turn, so a stage that scans every
message (the PII scan, moderation's word lists) would do work that grows with the square of a
conversation's length. Texts of `min_chars` or more are looked up by a 128-bit blake2b digest
first; only the digest and the result are kept, never the text. Shorter texts are scanned faster
than they are hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TextMemo(Generic[T]):
    def __init__(
        self, compute: Callable[[str], T], *, min_chars: int = 256, entries: int = 8192
    ) -> None:
        self.compute = compute
        self.min_chars = min_chars
        self.entries = entries
        self._seen: dict[bytes, T] = {}

    def __call__(self, text: str) -> T:
        if len(text) < self.min_chars:
            return self.compute(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        seen = self._seen
        if key in seen:
            return seen[key]
        result = seen[key] = self.compute(text)
        if len(seen) > self.entries:
            del seen[next(iter(seen))]  # the oldest
        return result
