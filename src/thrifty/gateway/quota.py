"""What limits a request: quotas, the checks made at admission, reservations and refusals.

Shared by the limiter (`thrifty.gateway.limits`) and the counters it keeps, in this process or in
Redis (`thrifty.gateway.limits_redis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from thrifty.config import QuotaLimits
from thrifty.costs.money import to_nanos


class Quota(Protocol):
    """What limits a subject: KeyPolicy has these fields, and so has TenantQuota."""

    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...
    @property
    def daily_tokens(self) -> int | None: ...
    @property
    def daily_usd_nanos(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class TenantQuota:
    rpm: int | None = None
    tpm: int | None = None
    daily_tokens: int | None = None
    daily_usd_nanos: int | None = None

    @classmethod
    def of(cls, limits: QuotaLimits) -> TenantQuota:
        usd = limits.daily_usd
        return cls(
            limits.rpm, limits.tpm, limits.daily_tokens, None if usd is None else to_nanos(usd)
        )


def limited(quota: Quota | None) -> bool:
    return quota is not None and (
        quota.rpm is not None
        or quota.tpm is not None
        or quota.daily_tokens is not None
        or quota.daily_usd_nanos is not None
    )


@dataclass(frozen=True, slots=True)
class Check:
    """One subject's limits for one admission; caps are the daily quotas × hard_cap."""

    subject: str  # key:<key_id> | tenant:<name>
    rpm: int | None
    tpm: int | None
    daily_tokens: int | None
    cap_tokens: int | None
    daily_nanos: int | None
    cap_nanos: int | None
    per_minute: bool  # has rpm or tpm: keeps a log of the last 60 s

    @classmethod
    def of(cls, subject: str, quota: Quota, hard_cap: tuple[int, int]) -> Check:
        """`hard_cap` as a ratio of integers: exact, and far cheaper than a Fraction."""
        tokens, nanos = quota.daily_tokens, quota.daily_usd_nanos
        num, den = hard_cap
        return cls(
            subject,
            quota.rpm,
            quota.tpm,
            tokens,
            None if tokens is None else tokens * num // den,
            nanos,
            None if nanos is None else nanos * num // den,
            quota.rpm is not None or quota.tpm is not None,
        )


@dataclass(slots=True)
class Reservation:
    """What an admitted request holds until it is charged."""

    id: str
    checks: tuple[Check, ...]
    tokens: int
    nanos: int
    day: int  # UTC day number (unix days) the daily counters were reserved on
    held_at: float  # unix time
    entries: list[Any] | None = None  # in-process: each check's minute-log entry


@dataclass(frozen=True, slots=True)
class Refusal:
    check: Check
    limit: str  # rpm | tpm | daily_tokens | daily_usd
    retry_after_s: float


class Counters(Protocol):
    """Where the counts live: this process, or Redis for every replica."""

    async def admit(
        self, id: str, checks: Sequence[Check], tokens: int, nanos: int
    ) -> Reservation | Refusal: ...

    def settle(self, reservation: Reservation, tokens: int, nanos: int) -> None:
        """Swap the reservation for the real use (may finish in the background: see `drain`)."""

    async def drain(self) -> None:
        """Wait for charges still being written."""

    async def close(self) -> None: ...
