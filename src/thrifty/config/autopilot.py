"""Autopilot: the loop that trains local students from captured cloud answers, by itself."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thrifty.config._base import _Section


class GateSettings(_Section):
    """What a candidate must show on the held-out examples before it sees any live traffic."""

    min_gain: float = Field(
        0.0,
        description="The candidate's held-out score must exceed the current model's by more "
        "than this.",
        ge=0,
    )
    cloud_share: float = Field(
        0.8,
        description="The candidate's held-out score must reach this share of the cloud's (the "
        "cloud's own answers are the references, so the cloud scores 1).",
        ge=0,
        le=1,
    )
    regression_margin: float = Field(
        0.05,
        description="On other tasks' examples the candidate may score at most this much below "
        "the current local model.",
        ge=0,
        le=1,
    )
    regression_examples: int = Field(
        8, description="Examples of other tasks checked for regressions (0: none).", ge=0
    )


class ShadowCheckSettings(_Section):
    """The live check after the gate: new traffic of the task answered by the candidate too."""

    min_requests: int = Field(
        8,
        description="Live requests of the task, captured after the candidate was registered, "
        "needed before the test; fewer: the run waits (a later run continues).",
        ge=2,
    )
    max_requests: int = Field(64, description="At most this many are answered again.", ge=2)
    alpha: float = Field(
        0.05,
        description="Significance level of the two-sided test (candidate against the current "
        "model on the gate's metric): promote when p < alpha and the candidate is better.",
        gt=0,
        lt=1,
    )


class BudgetSettings(_Section):
    """What one run may spend; a run that reaches a budget stops before its next step."""

    cpu_hours: float = Field(
        4.0, description="CPU time of the run's steps (this process and its children).", gt=0
    )
    cloud_usd: float = Field(
        1.0,
        description="Money the run's calls may cost where a cloud answers them, as the gateway "
        "prices them (the built-in metrics ask local models only: a call that fell back to the "
        "cloud counts here).",
        ge=0,
    )


class AutopilotTrainSettings(_Section):
    """The fine-tune of each candidate: LoRA on the current local base (`local.model`)."""

    epochs: int = Field(3, description="Epochs over the training split.", ge=1)
    lr: float = Field(2e-4, description="Learning rate.", gt=0)
    batch_size: int = Field(8, description="Examples per step.", ge=1)
    max_len: int = Field(256, description="Tokens per example; longer ones are cut.", ge=8)
    lora_r: int = Field(8, description="LoRA rank.", ge=1)
    threads: int | None = Field(None, description="CPU threads (default: every core).", ge=1)
    export: Literal["adapter", "merged"] = Field(
        "adapter",
        description="adapter: a LoRA GGUF served on the base's engine beside other adapters; "
        "merged: one quantized GGUF (q8_0) with its own engine.",
    )


class AutopilotSettings(_Section):
    """`thrifty autopilot`: per task (requests sharing a system prompt), captured cloud answers
    → dataset → LoRA → GGUF → gate → candidate → live check → promote (a routing rule for the
    task's `auto` traffic) or roll back → retrain the router's scorer. Every step is recorded in
    the store; `thrifty autopilot status` shows them."""

    enabled: bool = Field(
        False,
        description="Run the loop inside `thrifty serve` every interval_s (in a child process, "
        "off the request path); it also turns capture on for `tenants`. Off: nothing runs.",
    )
    interval_s: float = Field(3600.0, description="How often the scheduler looks.", ge=10)
    url: str | None = Field(
        None,
        description="The gateway the loop asks for the candidate's and the current model's "
        "answers; default: this config's host and port.",
    )
    tenants: list[str] = Field(
        default_factory=lambda: ["*"],
        description='Tenants whose traffic makes tasks ("*": every tenant).',
    )
    per_tenant: bool = Field(
        False, description="A task per (system prompt, tenant) instead of per system prompt."
    )
    min_examples: int = Field(
        32, description="Captured examples a task needs before a cycle starts.", ge=4
    )
    max_examples: int = Field(2000, description="The newest this many are used.", ge=4)
    holdout: float = Field(
        0.25, description="Share of the examples held out for the gate.", gt=0, lt=1
    )
    metric: Literal["exact", "contains", "similarity"] = Field(
        "similarity",
        description="How an answer is scored against the cloud's: exact (normalized equality), "
        "contains, or similarity (character n-gram F-score, 0-1, any language).",
    )
    max_tokens: int = Field(256, description="max_tokens of the answers the loop asks for.", ge=1)
    train: AutopilotTrainSettings = Field(default_factory=lambda: AutopilotTrainSettings())
    gate: GateSettings = Field(default_factory=lambda: GateSettings())
    shadow: ShadowCheckSettings = Field(default_factory=lambda: ShadowCheckSettings())
    budget: BudgetSettings = Field(default_factory=lambda: BudgetSettings())
    retrain_scorer: bool = Field(
        True, description="After a decision, refit the learned router scorer from the outcomes."
    )
