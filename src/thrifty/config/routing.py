"""The router's rules and A/B experiments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from thrifty.config._base import _Section


class Range(_Section):
    """A numeric condition: every bound given must hold."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def test(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )

    def __str__(self) -> str:
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        return ",".join(f"{ops[k]}{v:g}" for k, v in self.model_dump(exclude_none=True).items())


class TimeWindow(_Section):
    start: str = Field(description="HH:MM, UTC.", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(
        description="HH:MM, UTC; may be before start (wraps midnight).",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
    )
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(
        None, description="Weekdays (UTC) the window applies on; default every day."
    )


class POkRange(Range):
    """A bound on the scorer's P(good enough) for one target: ``{target: local, gte: 0.8}``."""

    target: str = Field(description="The target whose predicted P(good enough) is tested.")

    def __str__(self) -> str:
        return f"{self.target}{super().__str__()}"


class Conditions(_Section):
    """All conditions given must hold for a rule to match (none given: always matches)."""

    pii: bool | list[str] | None = Field(
        None, description="true: the prompt carries personal data; a list: one of these kinds."
    )
    prompt_tokens: Range | None = Field(None, description="Estimated prompt tokens.")
    max_tokens: Range | None = Field(None, description="The request's max_tokens.")
    complexity: Range | None = Field(None, description="The scorer's 0-1 difficulty estimate.")
    p_ok: POkRange | None = Field(
        None,
        description="The scorer's P(this target's answer is good enough), e.g. "
        "{target: local, gte: 0.8}.",
    )
    local_saturated: bool | None = Field(
        None, description="true: every local slot is busy (a new request would queue)."
    )
    local_queue: Range | None = Field(None, description="Requests waiting for a local slot.")
    qps: Range | None = Field(None, description="Requests per second over the last 10 s.")
    time_window: TimeWindow | None = Field(None, description="A UTC time window.")
    tenant: list[str] | None = Field(None, description="The caller's tenant is one of these.")
    task: list[str] | None = Field(
        None,
        description="The request's task key is one of these (the first 16 hex digits of the "
        "SHA-256 of its system prompt, as outcomes and `thrifty autopilot status` show it).",
    )
    header: dict[str, str] | None = Field(
        None, description="Request headers that must be present with these values."
    )


class Overrides(_Section):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    mask_pii: bool | None = Field(
        None, description="Replace personal data with placeholders before the request leaves."
    )
    system_prompt: str | None = Field(None, description="A system message to put first.")


class CheapestTarget(_Section):
    """Of these targets, the cheapest for this request whose predicted quality meets the bar."""

    cheapest: list[str] = Field(
        min_length=1, description="Candidate targets; the others stay as fallbacks, cheapest first."
    )


Check = Literal["logprob", "schema", "labels", "code"]
ALL_CHECKS: tuple[Check, ...] = ("logprob", "schema", "labels", "code")


class CascadeTarget(_Section):
    """Answer with the first target, check the answer, escalate to the next when a check fails."""

    cascade: list[str] = Field(
        min_length=2, description="Targets in order, cheapest first: [local, deepseek-chat]."
    )
    checks: list[Check] = Field(
        default_factory=lambda: list(ALL_CHECKS),
        description="logprob: mean token log-probability at or above min_logprob; schema: the "
        "answer parses against response_format's JSON schema; labels: the answer is one of "
        "`labels`; code: a fenced Python answer parses.",
    )
    min_logprob: float = Field(
        -1.0, description="Mean token log-probability below which an answer escalates.", le=0
    )
    labels: list[str] | None = Field(
        None, description="The answers allowed for the labels check (e.g. an intent set)."
    )
    buffer_stream: bool = Field(
        True,
        description="Streams: hold the local answer until it is verified (adds its whole "
        "generation time to time-to-first-token); false: stream it unchecked.",
    )


class RuleSettings(_Section):
    name: str
    when: Conditions = Field(default_factory=Conditions)
    target: str | list[str] | CheapestTarget | CascadeTarget = Field(
        description="local, an upstream alias, a list (fallbacks in order), reject, "
        "{cheapest: [local, deepseek-chat]} (the cheapest that meets router.quality_target), "
        "or {cascade: [local, deepseek-chat], checks: [logprob, schema, labels, code]}."
    )
    message: str | None = Field(None, description="What a rejected client is told.")
    overrides: Overrides | None = None


class ShadowSettings(_Section):
    """Shadow evaluation: answer a sample of routed requests on the other target too, off the
    client's path, and label whether the cheaper answer was good enough (an outcome)."""

    sample: float = Field(
        0.0, description="Share of `auto` requests shadowed (0 disables).", ge=0, le=1
    )
    max_usd_per_day: float = Field(
        1.0, description="Most money shadow answers and judging may cost per UTC day.", ge=0
    )
    judge: str | None = Field(
        None,
        description="Model that compares the two answers (default: the configured cloud); a "
        "request carrying `thrifty.reference` is scored against it instead.",
    )


class RouterSettings(_Section):
    models: list[str] = Field(
        default_factory=lambda: ["auto"], description="Model names that let the router decide."
    )
    cloud: str | None = Field(
        None, description="Cloud alias the default policy uses; default: the first upstream's."
    )
    complexity_threshold: float = Field(
        0.7, description="Default policy: at or above it, prefer the cloud.", ge=0, le=1
    )
    rules: list[RuleSettings] | None = Field(
        None, description="Ordered rules, first match wins; unset: the default policy."
    )
    quality_target: float = Field(
        0.95,
        description="The bar: a target qualifies when its predicted P(good enough) is at least "
        "this share of the best candidate's; the cheapest that qualifies wins.",
        gt=0,
        le=1,
    )
    cost_basis: Literal["marginal", "fully_loaded"] = Field(
        "marginal",
        description="Local cost that routing compares: marginal (power only; the machine is "
        "already paid for) or fully_loaded. Reports keep costs.local_basis.",
    )
    scorer: Literal["heuristic", "learned"] = Field(
        "heuristic",
        description="Quality predictor: heuristic (complexity cues, the cold-start default) or "
        "learned (`thrifty route train` from outcomes; heuristic until an artifact exists).",
    )
    expected_output_tokens: int = Field(
        256,
        description="Answer length assumed when pricing a request (capped by max_tokens).",
        ge=1,
    )
    cloud_cache_hit_share: float = Field(
        0.0,
        description="Expected share of a cloud prompt billed at the cache-hit price.",
        ge=0,
        le=1,
    )
    local_prefill_tps: float = Field(
        1000.0,
        description="Local prompt tokens processed per second (for its expected cost).",
        gt=0,
    )
    local_decode_tps: float = Field(
        40.0, description="Local answer tokens generated per second (for its expected cost).", gt=0
    )
    measure_local_speed: bool = Field(
        True,
        description="Replace local_decode_tps by the speed measured on this gateway's own local "
        "answers (a moving average, once 5 have been seen): a busy or slow machine then prices "
        "its answers at what they really take.",
    )
    shadow: ShadowSettings = Field(default_factory=lambda: ShadowSettings())


class VariantSettings(_Section):
    """One arm of an A/B experiment: the model it answers with, and its share of users."""

    model: str = Field(
        description="Model this variant answers with: local, an upstream alias, or a router "
        "model such as auto."
    )
    weight: float = Field(
        description="Share of users (0-1]; an experiment's weights sum to 1.", gt=0
    )


class ExperimentSettings(_Section):
    """An A/B experiment: requests for the model named like it are split between variants.

    Shape: ``experiments: {chat-ab: {variants: {control: {model: local, weight: 0.7},
    lora: {model: local-lora, weight: 0.2}, cloud: {model: deepseek-chat, weight: 0.1}}}}``.
    """

    variants: dict[str, VariantSettings] = Field(
        description="Variants by name, one of them `control` (the baseline others are tested "
        "against); weights > 0 summing to 1."
    )

    @model_validator(mode="after")
    def _check_variants(self) -> ExperimentSettings:
        if "control" not in self.variants:
            raise ValueError("an experiment needs a variant named `control`")
        total = sum(v.weight for v in self.variants.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"variant weights must sum to 1, not {total:g}")
        for name in self.variants:
            if not name or ":" in name:
                raise ValueError(f"variant name {name!r} must be non-empty and without ':'")
        return self
