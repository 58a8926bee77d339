"""Token counts of one request, read from an OpenAI-shaped ``usage`` object.

Providers report prompt caching differently, and the split matters because a cache hit is billed
at a fraction of a miss:

- DeepSeek: ``prompt_cache_hit_tokens`` and ``prompt_cache_miss_tokens`` (what it bills on);
- OpenAI and most compatible servers: ``prompt_tokens_details.cached_tokens``;
- neither: every prompt token is a miss.

Reasoning (DeepSeek's thinking mode, OpenAI's reasoning models) is billed as output. Both report
it as ``completion_tokens_details.reasoning_tokens``, a part of ``completion_tokens``, so it is
counted once, inside `completion_tokens`. A server whose reasoning count exceeds its completion
count evidently left the reasoning out; its completion tokens are then the sum of the two.
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
    """Tokens of one request.

    ``cache_hit_tokens`` is the part of the prompt served from cache; ``reasoning_tokens`` the
    part of the completion spent thinking (billed as output like the rest of it).
    """

    prompt_tokens: int
    completion_tokens: int
    cache_hit_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        counts = (self.prompt_tokens, self.completion_tokens, self.cache_hit_tokens)
        if min(*counts, self.reasoning_tokens) < 0:
            raise ValueError(f"token counts must be non-negative: {self}")
        if self.cache_hit_tokens > self.prompt_tokens:
            raise ValueError(f"more cache hits than prompt tokens: {self}")
        if self.reasoning_tokens > self.completion_tokens:
            raise ValueError(f"more reasoning than completion tokens: {self}")

    @property
    def cache_miss_tokens(self) -> int:
        return self.prompt_tokens - self.cache_hit_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> TokenUsage:
        """Read a ``usage`` object; missing or malformed fields count as zero."""
        if not usage:
            return cls(0, 0)
        completion = _count(usage.get("completion_tokens")) or 0
        reasoning = 0
        completion_details = usage.get("completion_tokens_details")
        if isinstance(completion_details, Mapping):
            reasoning = _count(completion_details.get("reasoning_tokens")) or 0
        if reasoning > completion:  # reported beside the completion, not inside it
            completion += reasoning
        prompt = _count(usage.get("prompt_tokens"))
        hit = _count(usage.get("prompt_cache_hit_tokens"))
        miss = _count(usage.get("prompt_cache_miss_tokens"))
        if hit is not None and miss is not None:
            # DeepSeek bills on these two, so they define the prompt even if prompt_tokens differs.
            return cls(hit + miss, completion, hit, reasoning)
        prompt = prompt or 0
        if hit is None:
            details = usage.get("prompt_tokens_details")
            if isinstance(details, Mapping):
                hit = _count(details.get("cached_tokens"))
        # A server that reports more cached than prompt tokens is wrong; never bill negative misses.
        return cls(prompt, completion, min(hit or 0, prompt), reasoning)
