"""The router: for `model: auto`, the first rule whose conditions all hold picks the target.

Policy is data (`router.rules` in thrifty.yaml). With no rules configured, the default policy is:

    pii-local         personal data in any message     -> local only (never the cloud)
    local-saturated   every local slot busy            -> cloud, then local
    complex           complexity >= 0.7                -> cloud, then local
    default           anything else                    -> local, then cloud

With no cloud configured, everything is local. Conditions are evaluated lazily, in the order
written, so a rule that never asks for complexity never computes it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from thrifty.backends import Registry, Reply, Target
from thrifty.config import (
    Conditions,
    Overrides,
    Range,
    RouterSettings,
    RuleSettings,
    TimeWindow,
)
from thrifty.context import RequestContext
from thrifty.errors import InvalidRequest, RouteRejected
from thrifty.gateway.complexity import HeuristicScorer, Scorer, estimate_tokens
from thrifty.gateway.pii import iter_message_texts
from thrifty.gateway.stage import Stage

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def default_rules(has_local: bool, cloud: str | None, threshold: float) -> list[RuleSettings]:
    if not has_local:
        return [RuleSettings(name="cloud-only", target=cloud)] if cloud else []
    if cloud is None:
        return [RuleSettings(name="local-only", target="local")]
    return [
        RuleSettings(name="pii-local", when=Conditions(pii=True), target="local"),
        RuleSettings(
            name="local-saturated", when=Conditions(local_saturated=True), target=[cloud, "local"]
        ),
        RuleSettings(
            name="complex",
            when=Conditions.model_validate({"complexity": {"gte": threshold}}),
            target=[cloud, "local"],
        ),
        RuleSettings(name="default", target=["local", cloud]),
    ]


class RateWindow:
    """Requests per second over a sliding window."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._times: deque[float] = deque()

    def hit(self) -> None:
        now = self.clock()
        self._times.append(now)
        cutoff = now - self.window_s
        while self._times[0] < cutoff:
            self._times.popleft()

    def rate(self) -> float:
        cutoff = self.clock() - self.window_s
        while self._times and self._times[0] < cutoff:
            self._times.popleft()
        return len(self._times) / self.window_s


def in_window(window: TimeWindow, at: datetime) -> bool:
    if window.days is not None and _DAYS[at.weekday()] not in window.days:
        return False
    now = at.strftime("%H:%M")
    if window.start <= window.end:
        return window.start <= now < window.end
    return now >= window.start or now < window.end  # wraps midnight


@dataclass(slots=True)
class Decision:
    rule: RuleSettings
    why: str  # the condition that matched, for x-thrifty-reason

    @property
    def reason(self) -> str:
        return f"rule:{self.rule.name}" + (f" ({self.why})" if self.why else "")


class Router(Stage):
    """A stage: decides targets for requests whose model names the router."""

    def __init__(
        self,
        settings: RouterSettings,
        registry: Registry,
        scorer: Scorer | None = None,
        qps: RateWindow | None = None,
    ) -> None:
        self.models = frozenset(settings.models)
        self.registry = registry
        self.scorer = scorer or HeuristicScorer()
        self.qps = qps or RateWindow()
        cloud = settings.cloud or next(iter(registry.cloud_routes()), None)
        has_local = registry.resolve("local") is not None
        self.rules = settings.rules or default_rules(
            has_local, cloud, settings.complexity_threshold
        )
        self._check_targets()

    def _check_targets(self) -> None:
        for rule in self.rules:
            for name in _target_names(rule):
                if name != "reject" and self.registry.resolve(name) is None:
                    raise ValueError(f"router rule {rule.name!r} targets unknown model {name!r}")

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        self.qps.hit()
        if ctx.model not in self.models:
            return None
        decision = self.decide(ctx)
        rule = decision.rule
        ctx.reason = decision.reason
        if rule.target == "reject":
            raise RouteRejected(rule.message or f"rejected by routing rule {rule.name!r}")
        ctx.targets = [self._target(name) for name in _target_names(rule)]
        if rule.overrides is not None:
            apply_overrides(ctx, rule.overrides)
        return None

    def _target(self, name: str) -> Target:
        target = self.registry.resolve(name)
        assert target is not None  # checked at start
        return target

    def decide(self, ctx: RequestContext) -> Decision:
        for rule in self.rules:
            why = self._matches(rule.when, ctx)
            if why is not None:
                return Decision(rule, why)
        raise InvalidRequest("no routing rule matched this request", param="model")

    def _matches(self, when: Conditions, ctx: RequestContext) -> str | None:
        """The matched conditions as text ('' for a rule without any), or None."""
        said: list[str] = []
        if when.pii is not None:
            if when.pii is False:
                if ctx.pii:
                    return None
                said.append("pii=none")
            else:
                found = ctx.pii if when.pii is True else ctx.pii & set(when.pii)
                if not found:
                    return None
                said.append("pii=" + "+".join(sorted(found)))
        if when.tenant is not None:
            if ctx.tenant not in when.tenant:
                return None
            said.append(f"tenant={ctx.tenant}")
        if when.header is not None:
            for header, expected in when.header.items():
                if ctx.request_headers.get(header) != expected:
                    return None
            said.append("header")
        if when.local_saturated is not None:
            local = self.registry.local
            saturated = local is not None and local.saturated()
            if saturated is not when.local_saturated:
                return None
            said.append(f"local_saturated={str(saturated).lower()}")
        checks: list[tuple[str, Range | None, Callable[[], float]]] = [
            ("local_queue", when.local_queue, self._local_queue),
            ("qps", when.qps, self.qps.rate),
            ("max_tokens", when.max_tokens, lambda: _max_tokens(ctx)),
            ("prompt_tokens", when.prompt_tokens, lambda: prompt_tokens(ctx)),
            ("complexity", when.complexity, lambda: self._complexity(ctx)),
        ]
        for name, bound, measure in checks:
            if bound is None:
                continue
            value = measure()
            if not bound.test(value):
                return None
            said.append(f"{name}={value:g}")
        if when.time_window is not None:
            if not in_window(when.time_window, datetime.fromtimestamp(ctx.received_at, UTC)):
                return None
            said.append(f"time_window={when.time_window.start}-{when.time_window.end}")
        return ", ".join(said)

    def _local_queue(self) -> float:
        local = self.registry.local
        return float(local.load()) if local is not None else 0.0

    def _complexity(self, ctx: RequestContext) -> float:
        if ctx.complexity is None:
            ctx.complexity = self.scorer.score(ctx.body.get("messages") or [])
        return ctx.complexity


def _target_names(rule: RuleSettings) -> list[str]:
    return [rule.target] if isinstance(rule.target, str) else list(rule.target)


def _max_tokens(ctx: RequestContext) -> float:
    body = ctx.body
    return float(body.get("max_tokens") or body.get("max_completion_tokens") or 0)


def prompt_tokens(ctx: RequestContext) -> float:
    if ctx.prompt_tokens is None:
        messages = ctx.body.get("messages")
        if messages is not None:
            text = "\n".join(t for m in messages for t in iter_message_texts(m))
        else:
            prompt = ctx.body.get("prompt")
            text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
        ctx.prompt_tokens = estimate_tokens(text)
    return float(ctx.prompt_tokens)


def apply_overrides(ctx: RequestContext, overrides: Overrides) -> None:
    body = dict(ctx.body)
    for field in ("temperature", "top_p", "max_tokens"):
        value = getattr(overrides, field)
        if value is not None:
            body[field] = value
    if overrides.system_prompt:
        system = {"role": "system", "content": overrides.system_prompt}
        body["messages"] = [system, *(body.get("messages") or [])]
    if overrides.mask_pii is not None:
        ctx.mask_pii = overrides.mask_pii
    ctx.body = body
