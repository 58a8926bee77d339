"""Request limits, quotas and budgets."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from thrifty.config._base import _Section


class QuotaLimits(_Section):
    """One tenant's rate limits and budgets; an unset field is unlimited."""

    rpm: int | None = Field(None, description="Requests in any sliding 60 s.", ge=0)
    tpm: int | None = Field(
        None,
        description="Tokens in any sliding 60 s (prompt estimate + max_tokens reserved at "
        "admission, replaced by the real usage when the answer is done).",
        ge=0,
    )
    daily_tokens: int | None = Field(None, description="Tokens per UTC day.", ge=0)
    daily_usd: Decimal | None = Field(
        None, description="Money per UTC day, in USD (exact decimal, e.g. 5.00).", ge=0
    )


class LimitsSettings(_Section):
    """Request size caps, and the rate limits and budgets of tenants (keys carry their own)."""

    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        description="Largest request body accepted (counted while it is read, chunked too).",
    )
    header_timeout_s: float = Field(
        10.0,
        description="A connection must finish a request's headers within this time (408, closed).",
        gt=0,
    )
    body_timeout_s: float = Field(
        30.0, description="Longest wait for the next piece of a request body (408).", gt=0
    )
    max_header_bytes: int = Field(
        65536, description="Largest request head (request line and headers) accepted.", ge=1024
    )
    max_connections: int = Field(
        1000,
        description="Connections and requests in flight at once; past it, 503 at once.",
        ge=1,
    )
    max_messages: int = Field(1024, description="Most messages in one chat request.")
    max_tokens: int = Field(32768, description="Largest max_tokens a client may ask for.")
    tenants: dict[str, QuotaLimits] = Field(
        default_factory=dict,
        description="Rate limits and budgets per tenant name (an API key's own limits apply too).",
    )
    default_tenant: QuotaLimits | None = Field(
        None, description="Limits of every tenant not named in `tenants`; unset: unlimited."
    )
    hard_cap: float = Field(
        2.0,
        description="Daily quotas: a request may start while some quota is left, and only if its "
        "worst case keeps the day under quota × hard_cap (2: bursts never pass 200%).",
        ge=1,
    )
    reserve_completion_tokens: int = Field(
        1024,
        description="Completion tokens reserved at admission for a request with no max_tokens.",
        ge=0,
    )
    redis_url: str | None = Field(
        None,
        description="Redis (redis://host:6379/0) holding the counters, shared by every replica; "
        "unset: in-process counters (one replica).",
    )
    redis_prefix: str = Field("thrifty:limits", description="Prefix of the limits' Redis keys.")
    fail_open: bool = Field(
        True,
        description="Redis unreachable: admit requests uncounted (logged), or refuse them (503).",
    )
