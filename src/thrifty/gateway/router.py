"""The router: for `model: auto`, the first rule whose conditions all hold picks the target.

Policy is data (`router.rules` in thrifty.yaml). With no rules configured, the default policy is:

    pii-local         personal data in any message     -> local only (never the cloud)
    local-saturated   every local slot busy            -> cloud, then local
    default           anything else                    -> {cheapest: [local, cloud]}

``{cheapest: [...]}`` prices this request on each candidate and predicts each one's
P(good enough) (the heuristic, or the scorer learned from outcomes: `gateway.scorer`), then takes
the cheapest whose quality meets ``router.quality_target`` (`gateway.policy`). With the heuristic
that is the old line "complexity >= complexity_threshold goes to the cloud" as long as local is
the cheaper; when the configured local cost is higher, the cloud wins where it is as good.

With no cloud configured, everything is local. Conditions are evaluated lazily, in the order
written, so a rule that never asks for complexity never computes it, and only requests for a
router model (`auto`) pay for features, the embedding or the scorer.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.backends import Registry, Reply, Target
from thrifty.config import (
    CascadeTarget,
    CheapestTarget,
    Conditions,
    CostSettings,
    Overrides,
    Range,
    RouterSettings,
    RuleSettings,
    TimeWindow,
)
from thrifty.context import RequestContext
from thrifty.costs.pricebook import PriceBook
from thrifty.errors import InvalidRequest, RouteRejected
from thrifty.gateway.complexity import HeuristicScorer, Scorer, estimate_tokens
from thrifty.gateway.pii import iter_message_texts
from thrifty.gateway.policy import Candidate, CostModel, choose, explain
from thrifty.gateway.promoted import PromotedRules
from thrifty.gateway.scorer import (
    HeuristicQuality,
    LearnedQuality,
    RequestFeatures,
    artifact_path,
)
from thrifty.gateway.stage import Stage

if TYPE_CHECKING:
    from thrifty.encoders import Embedder

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def default_rules(has_local: bool, cloud: str | None) -> list[RuleSettings]:
    if not has_local:
        return [RuleSettings(name="cloud-only", target=cloud)] if cloud else []
    if cloud is None:
        return [RuleSettings(name="local-only", target="local")]
    return [
        RuleSettings(name="pii-local", when=Conditions(pii=True), target="local"),
        RuleSettings(
            name="local-saturated", when=Conditions(local_saturated=True), target=[cloud, "local"]
        ),
        RuleSettings(name="default", target=CheapestTarget(cheapest=["local", cloud])),
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
    targets: list[str] = field(default_factory=list)  # in the order to try
    candidates: list[Candidate] = field(default_factory=list)  # priced, for cheapest rules

    @property
    def reason(self) -> str:
        return f"rule:{self.rule.name}" + (f" ({self.why})" if self.why else "")


_REMEMBERED = 10_000  # recent auto requests whose features feedback may still name


class Router(Stage):
    """A stage: decides targets for requests whose model names the router."""

    def __init__(
        self,
        settings: RouterSettings,
        registry: Registry,
        scorer: Scorer | None = None,
        qps: RateWindow | None = None,
        *,
        costs: CostSettings | None = None,
        prices: PriceBook | None = None,
        home: Path | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.models = frozenset(settings.models)
        self.registry = registry
        self.scorer = scorer or HeuristicScorer()
        self.heuristic = self.scorer if isinstance(self.scorer, HeuristicScorer) else None
        self.qps = qps or RateWindow()
        self.cloud = settings.cloud or next(iter(registry.cloud_routes()), None)
        has_local = registry.resolve("local") is not None
        self.configured = settings.rules or default_rules(has_local, self.cloud)
        self.rules = self.configured
        self._check_targets()
        # the autopilot's rules (one per task it promoted a student for) come first
        self.promoted: PromotedRules | None = None
        if home is not None:
            self.promoted = PromotedRules(home, lambda name: registry.resolve(name) is not None)
            self.rules = [*self.promoted.rules, *self.configured]
        self.costs = CostModel(settings, costs or CostSettings(), prices or PriceBook.load())
        fallback = HeuristicQuality(settings.quality_target, settings.complexity_threshold)
        self.quality: HeuristicQuality | LearnedQuality = fallback
        if settings.scorer == "learned" and home is not None:
            self.quality = LearnedQuality(artifact_path(home), fallback, embedder)
        self.recent: OrderedDict[str, RequestFeatures | None] = OrderedDict()
        self.warning = (
            self.costs.warn_if_local_dearer(
                self.registry.resolve(self.cloud) if self.cloud else None
            )
            if has_local
            else None
        )

    def _check_targets(self) -> None:
        for rule in self.rules:
            for name in _target_names(rule):
                if name != "reject" and self.registry.resolve(name) is None:
                    raise ValueError(f"router rule {rule.name!r} targets unknown model {name!r}")
            p_ok = rule.when.p_ok
            if p_ok is not None and self.registry.resolve(p_ok.target) is None:
                raise ValueError(f"router rule {rule.name!r}: p_ok names unknown {p_ok.target!r}")

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        self.qps.hit()
        if ctx.model not in self.models:
            return None
        if self.promoted is not None and self.promoted.refresh():
            self.rules = [*self.promoted.rules, *self.configured]
        decision = self.decide(ctx)
        rule = decision.rule
        ctx.reason = decision.reason
        if rule.target == "reject":
            raise RouteRejected(rule.message or f"rejected by routing rule {rule.name!r}")
        ctx.targets = [self._target(name) for name in decision.targets]
        ctx.candidates = decision.candidates
        if isinstance(rule.target, CascadeTarget):
            ctx.cascade = rule.target
        if rule.overrides is not None:
            apply_overrides(ctx, rule.overrides)
        self._remember(ctx)
        return None

    def on_finish(self, ctx: RequestContext) -> None:
        """A local answer tells how fast the local engine really is (for its expected cost)."""
        target = ctx.answered_by
        if target is None or target.upstream is not None or ctx.status != 200 or not ctx.usage:
            return
        engine = target.backend
        sharing = max(1, min(getattr(engine, "in_flight", 0) + 1, getattr(engine, "parallel", 1)))
        self.costs.observe_local(
            ctx.latency_s / sharing,
            int(ctx.usage.get("prompt_tokens") or 0),
            int(ctx.usage.get("completion_tokens") or 0),
        )

    def _target(self, name: str) -> Target:
        target = self.registry.resolve(name)
        assert target is not None  # checked at start
        return target

    def decide(self, ctx: RequestContext) -> Decision:
        for rule in self.rules:
            why = self._matches(rule.when, ctx)
            if why is None:
                continue
            if self._gone(rule):
                continue
            decision = Decision(rule, why, _target_names(rule))
            if isinstance(rule.target, CheapestTarget):
                priced = self.price(ctx, rule.target.cheapest)
                ordered = choose(priced, self.settings.quality_target)
                decision.candidates = ordered
                decision.targets = [c.name for c in ordered]
                said = explain(ordered[0], self.settings.quality_target)
                decision.why = f"{why}, {said}" if why else said
            return decision
        raise InvalidRequest("no routing rule matched this request", param="model")

    def _gone(self, rule: RuleSettings) -> bool:
        """An autopilot rule whose student left the registry before the rule left its file."""
        promoted = self.promoted
        if promoted is None or not any(rule is mine for mine in promoted.rules):
            return False
        return isinstance(rule.target, str) and self.registry.resolve(rule.target) is None

    def price(self, ctx: RequestContext, names: list[str]) -> list[Candidate]:
        """Each candidate with its expected cost for this request and its P(good enough)."""
        targets = {name: self._target(name) for name in names}
        quality = self.predict(ctx, {n: t.upstream is None for n, t in targets.items()})
        tokens_in = int(prompt_tokens(ctx))
        tokens_out = self.costs.output_tokens(int(_max_tokens(ctx)) or None)
        at = datetime.fromtimestamp(ctx.received_at, UTC)
        return [
            Candidate(n, t, self.costs.nanos(t, tokens_in, tokens_out, at), quality[n])
            for n, t in targets.items()
        ]

    def features(self, ctx: RequestContext) -> RequestFeatures:
        if ctx.features is None:
            heuristic = self.heuristic or HeuristicScorer()
            ctx.features = RequestFeatures.of(_messages(ctx), heuristic)
            if self.heuristic is not None:
                ctx.complexity = ctx.features.complexity
        features: RequestFeatures = ctx.features
        return features

    def predict(self, ctx: RequestContext, targets: dict[str, bool]) -> dict[str, float]:
        """Target name -> P(good enough) for this request."""
        features = self.features(ctx)
        if self.heuristic is None:  # a custom complexity scorer feeds the heuristic quality
            features.cheap["complexity"] = self._complexity(ctx)
        return self.quality.predict(features, targets)

    def _remember(self, ctx: RequestContext) -> None:
        """Keep the features of recent requests for feedback; never the text of PII requests."""
        self.recent[ctx.id] = self.features(ctx) if not ctx.pii else None
        while len(self.recent) > _REMEMBERED:
            self.recent.popitem(last=False)

    def recall(self, request_id: str) -> RequestFeatures | None:
        return self.recent.get(request_id)

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
        if when.task is not None:
            task = self.features(ctx).task
            if task not in when.task:
                return None
            said.append(f"task={task}")
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
        if when.p_ok is not None:
            named = when.p_ok.target
            is_local = self._target(named).upstream is None
            checks.append(
                (f"p_ok[{named}]", when.p_ok, lambda: self.predict(ctx, {named: is_local})[named])
            )
        for name, bound, measure in checks:
            if bound is None:
                continue
            value = measure()
            if not bound.test(value):
                return None
            said.append(f"{name}={value:.3g}")
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
            if self.heuristic is not None:
                ctx.complexity = self.features(ctx).complexity
            else:
                ctx.complexity = self.scorer.score(ctx.body.get("messages") or [])
        return ctx.complexity


def _target_names(rule: RuleSettings) -> list[str]:
    target = rule.target
    if isinstance(target, CheapestTarget):
        return list(target.cheapest)
    if isinstance(target, CascadeTarget):
        return list(target.cascade)
    return [target] if isinstance(target, str) else list(target)


def _messages(ctx: RequestContext) -> list[dict[str, object]]:
    messages = ctx.body.get("messages")
    if messages is not None:
        return list(messages)
    prompt = ctx.body.get("prompt")
    text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
    return [{"role": "user", "content": text}]


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
    for name in ("temperature", "top_p", "max_tokens"):
        value = getattr(overrides, name)
        if value is not None:
            body[name] = value
    if overrides.system_prompt:
        system = {"role": "system", "content": overrides.system_prompt}
        body["messages"] = [system, *(body.get("messages") or [])]
    if overrides.mask_pii is not None:
        ctx.mask_pii = overrides.mask_pii
    ctx.body = body
