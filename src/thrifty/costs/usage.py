"""Token counts of one request, read from an OpenAI-shaped ``usage`` object.

Providers report prompt caching differently, and the split matters because a cache hit is billed
at a fraction of a miss:

- DeepSeek: ``prompt_cache_hit_tokens`` and ``prompt_cache_miss_tokens`` (what it bills on);
- OpenAI and most compatible servers: ``prompt_tokens_details.cached_tokens``;
- neither: every prompt token is a miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _count(value: Any) -> int | None:
    """A non-negative token count, or None when the field is absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(int(value), 0)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one request; ``cache_hit_tokens`` is the part of the prompt served from cache."""

    prompt_tokens: int
    completion_tokens: int
    cache_hit_tokens: int = 0

    def __post_init__(self) -> None:
        if min(self.prompt_tokens, self.completion_tokens, self.cache_hit_tokens) < 0:
            raise ValueError(f"token counts must be non-negative: {self}")
        if self.cache_hit_tokens > self.prompt_tokens:
            raise ValueError(f"more cache hits than prompt tokens: {self}")

    @property
    def cache_miss_tokens(self) -> int:
        return self.prompt_tokens - self.cache_hit_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> TokenUsage:
        """Read a ``usage`` object; missing or malformed fields count as zero."""
        if not usage:
            return cls(0, 0)
        completion = _count(usage.get("completion_tokens")) or 0
        prompt = _count(usage.get("prompt_tokens"))
        hit = _count(usage.get("prompt_cache_hit_tokens"))
        miss = _count(usage.get("prompt_cache_miss_tokens"))
        if hit is not None and miss is not None:
            # DeepSeek bills on these two, so they define the prompt even if prompt_tokens differs.
            return cls(hit + miss, completion, hit)
        prompt = prompt or 0
        if hit is None:
            details = usage.get("prompt_tokens_details")
            if isinstance(details, Mapping):
                hit = _count(details.get("cached_tokens"))
        # A server that reports more cached than prompt tokens is wrong; never bill negative misses.
        return cls(prompt, completion, min(hit or 0, prompt))
