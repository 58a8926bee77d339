"""RequestContext: the one object every stage reads and annotates on a request's way through."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thrifty.backends import Target
    from thrifty.backends.base import Endpoint


def new_request_id() -> str:
    # 96 random bits from the process's seeded PRNG (re-seeded after fork): unique enough for
    # an id, and no syscall on the hot path
    return f"req-{random.getrandbits(96):024x}"


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Who is calling, and what their API key allows. Set by authentication, read by limits."""

    key_id: str  # public id of the key (never the secret)
    tenant: str
    role: str  # admin | user | viewer
    models: frozenset[str] | None = None  # None: every model
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute
    daily_tokens: int | None = None
    daily_usd_nanos: int | None = None  # daily money budget, nano-USD
    expires_at: float | None = None  # unix time
    tags: frozenset[str] = frozenset()


ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"call", "manage_keys", "read_all_usage", "read_own_usage"}),
    "user": frozenset({"call", "read_own_usage"}),
    "viewer": frozenset({"read_own_usage"}),
}


def may(key: KeyPolicy, action: str) -> bool:
    return action in ROLE_ACTIONS.get(key.role, frozenset())


@dataclass(slots=True)
class Attempt:
    """One try of one target: appended by the call stage, read by the reason header, the log
    and traces."""

    route: str
    upstream: str | None
    status: int  # HTTP status the attempt ended with (200: answered)
    error: str | None = None  # error code of a failed attempt (upstream_error, timeout, ...)
    latency_s: float = 0.0


@dataclass(slots=True)
class RequestContext:
    """One request on its way through the gateway and back.

    Each fact is set by the stage that owns it: the caller (key, tenant) by authentication,
    `pii` by the privacy scan, `targets` and `reason` by the route decision (later stages may
    only narrow `targets`, saying why in `notes`), `attempts` and `answered_by` by the call,
    `usage`/`reply` by the gateway, cost by the meter. `route` is derived, never written.
    """

    endpoint: Endpoint
    body: dict[str, Any]  # the client's JSON, validated; what goes upstream is derived from it
    model: str  # the model the client asked for
    stream: bool
    id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    received_at: float = field(default_factory=time.time)
    tenant: str = "default"
    key_id: str | None = None
    key: KeyPolicy | None = None  # the caller's key, when keys are configured

    request_headers: Mapping[str, str] = field(default_factory=dict)

    # what the stages decide
    pii: frozenset[str] = frozenset()  # kinds of personal data found in the prompt
    mask_pii: bool = False  # replace personal data with placeholders before it leaves
    pii_mapping: dict[str, str] | None = None  # placeholder -> original, when masked
    complexity: float | None = None  # computed on demand by the router
    prompt_tokens: int | None = None  # estimated on demand by the router
    features: Any = None  # the router's RequestFeatures (auto requests), embedding included
    candidates: list[Any] = field(default_factory=list)  # the router's priced candidates
    cascade: Any = None  # the rule's CascadeTarget: the call verifies the first answer
    targets: list[Target] = field(default_factory=list)  # first is preferred, the rest fallbacks
    reason: str = ""  # why those targets: model:<name>, rule:<name> ... (set once)
    notes: list[str] = field(default_factory=list)  # what later stages changed, and why
    cache: str = ""  # cache outcome, when a cache stage ran (hit-…: answered from the cache)
    variant: str | None = None

    # what happened
    attempts: list[Attempt] = field(default_factory=list)
    answered_by: Target | None = None
    keep_reply: bool = False  # a stage wants the whole answer of a stream in `reply`
    reply: dict[str, Any] | None = None  # the whole answer as the model gave it, once complete
    usage: dict[str, Any] | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    status: int = 200
    error_code: str | None = None
    cost_nanos: int | None = None  # billed cost in nano-USD (None: not priced)
    baseline_nanos: int | None = None  # what the reference cloud model would have cost
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def route(self) -> str:
        """Where the answer came from (or would): cache | local | an upstream alias."""
        if self.cache.startswith("hit"):
            return "cache"
        if self.answered_by is not None:
            return self.answered_by.route
        return self.targets[0].route if self.targets else ""

    @property
    def reason_header(self) -> str:
        """What x-thrifty-reason and the request log say: the decision and what changed it."""
        if self.cache.startswith("hit-"):  # hit-exact, hit-semantic;sim=0.97
            return "cache:" + self.cache[4:].split(";", 1)[0]
        return "; ".join([self.reason, *self.notes]) if self.notes else self.reason

    @property
    def latency_s(self) -> float:
        return (self.finished_at or time.perf_counter()) - self.started

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started
