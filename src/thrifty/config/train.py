"""Distillation: capture of cloud answers for training."""

from __future__ import annotations

from pydantic import Field

from thrifty.config._base import _Section


class DistillSettings(_Section):
    """Opt-in capture of cloud answers as training samples (`thrifty distill collect --from-log`).

    A captured sample is the messages exactly as the cloud received them and its answer, stored
    in the `samples` table. A request that carries personal data is never captured unless it was
    masked before it left (then the masked text is stored, never the original values).
    """

    capture_tenants: list[str] = Field(
        default_factory=list,
        description="Tenants whose answers are captured; empty: capture is off (the default); "
        '"*": every tenant.',
    )
    capture_routes: list[str] = Field(
        default_factory=list,
        description="Routes whose answers are captured (upstream aliases such as deepseek-chat); "
        "empty: every cloud (upstream) route. Cache hits are never captured.",
    )
