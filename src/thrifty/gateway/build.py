"""`build_gateway(settings)`: the one place that lists the stages, in order.

Request halves run top to bottom; answer halves (whole, streamed) and finish halves bottom to top.

    access      Admit               a viewer may not call models; a limited key names its models
    guard       Guard               sizes a request must meet before anything is spent on it
    moderation  Moderation          word lists on the request; on the answer (whole or streamed)
    privacy     PIIScan             which kinds of personal data the request carries
    moderation  SelfCheckStage      (optional) a judge model on the request; a request with
                                    personal data is judged locally or not at all
    route       Experiments         an experiment's name becomes its variant's model (before the
                                    router, which may own the variant's model name)
                Router              rules -> targets for router names (`auto`)
                ModelRoute          a model name -> its target, when no router decided
    privacy     PrivacyGuard        enforce privacy.on_pii on the final targets; restore masked
                                    values in the answer
    access      ScopeTargets        narrow the targets to the ones the key may use
                Capabilities        drop targets that cannot do what the request uses (tools,
                                    images, a JSON schema, embeddings); 400 when none can
    route       Shadow              (router.shadow.sample > 0) samples `auto` requests; once
                                    finished, answers again on the other target, off the path
    cache       ResponseCache       after privacy and scope decided the final targets; stores the
                                    finished answer
    limits      Limiter             last of the checks: counts what is about to be called, on its
                                    final route; charges the real usage when finished
    capture     SampleCapture       (opt-in) keeps masked cloud answers for distillation

then the call (backends with deadline, retries, fallback, breakers) and the meter (cost, saving,
request log, metrics, audit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thrifty.backends import Registry
from thrifty.config import Settings
from thrifty.context import RequestContext
from thrifty.costs.pricebook import PriceBook
from thrifty.gateway.access import Admit, ScopeTargets
from thrifty.gateway.breaker import CircuitBreaker
from thrifty.gateway.cache import ResponseCache
from thrifty.gateway.call import Caller
from thrifty.gateway.capabilities import Capabilities
from thrifty.gateway.capture import SampleCapture, build_capture
from thrifty.gateway.coldstart import ColdStart
from thrifty.gateway.experiments import Experiments
from thrifty.gateway.guard import Guard
from thrifty.gateway.limits import Limiter, PriceEstimate, build_limiter
from thrifty.gateway.meter import Meter
from thrifty.gateway.metrics import Metrics
from thrifty.gateway.moderation import Moderation, build_self_check
from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.pipeline import Gateway
from thrifty.gateway.privacy import (
    GuardedCaller,
    GuardedCheck,
    PIIScan,
    PrivacyGuard,
    unscanned_model_name,
)
from thrifty.gateway.route import ModelRoute
from thrifty.gateway.router import Router
from thrifty.gateway.shadow import Shadow
from thrifty.gateway.stage import Stage
from thrifty.gateway.telemetry import build_telemetry
from thrifty.store.audit import AuditLog
from thrifty.store.batching import BatchWriter
from thrifty.store.request_log import RequestLog
from thrifty.store.review import ReviewQueue
from thrifty.store.samples import SampleLog


@dataclass
class GatewayParts:
    """The gateway and what it holds: the parts admin routes and gauges read, and the stores
    it opens and closes."""

    gateway: Gateway
    router: Router
    experiments: Experiments
    moderation: Moderation
    cache: ResponseCache
    limiter: Limiter
    capture: SampleCapture | None
    shadow: Shadow | None
    breakers: dict[str, CircuitBreaker]
    request_log: RequestLog
    audit: AuditLog
    review: ReviewQueue
    writers: list[BatchWriter[Any]] = field(default_factory=list)
    exporter: Any = None  # the OTLP exporter's thread, when traces are on

    def open(self) -> None:
        if self.exporter is not None:
            self.exporter.start()
        self.request_log.open()
        self.audit.open()
        self.review.open()
        if self.capture is not None:
            self.capture.open()

    async def close(self) -> None:
        await self.limiter.close()
        if self.shadow is not None:
            await self.shadow.close()  # shadows in flight store their outcomes
        await self.cache.flush()  # writes in flight land before the threads stop
        self.cache.close()
        self.request_log.close()
        self.audit.close()
        self.review.close()
        if self.capture is not None:
            self.capture.close()
        if self.exporter is not None:
            self.exporter.close()  # the last requests' spans leave


def build_gateway(settings: Settings, registry: Registry, metrics: Metrics) -> GatewayParts:
    store = settings.store
    prices = PriceBook.load(settings.prices)

    def dropped(name: str) -> Callable[[int], None]:
        return metrics.store_dropped.labels(name).inc

    request_log = RequestLog(
        settings.database_url,
        batch_size=store.batch_size,
        flush_interval_s=store.flush_interval_s,
        max_buffered=store.max_buffered_rows,
        on_drop=dropped(RequestLog.name),
        spool=settings.home / "spool" if store.spool else None,
    )
    audit = AuditLog(
        settings.database_url,
        flush_interval_s=store.flush_interval_s,
        max_buffered=store.max_buffered_rows,
        on_drop=dropped(AuditLog.name),
    )
    breakers = {
        up.name: CircuitBreaker(up.breaker.failures, up.breaker.window_s, up.breaker.cooldown_s)
        for up in settings.upstreams
    }
    caller = Caller(
        breakers,
        {up.name: up.max_retries for up in settings.upstreams},
        on_retry=lambda name: metrics.retries.labels(name).inc(),
    )
    detector = PIIDetector(settings.privacy.detect)
    router = Router(
        settings.router, registry, costs=settings.costs, prices=prices, home=settings.home
    )
    shadow = Shadow(settings.router.shadow, registry, router, settings.database_url)
    experiments = Experiments(settings.experiments, registry, router.models)
    review = ReviewQueue(settings.database_url)
    moderation = Moderation(settings.moderation, review=review.add)
    served = frozenset(registry.names()) | router.models | frozenset(settings.experiments)
    pii_scan = PIIScan(detector, settings.privacy, served)
    # the judge reads the client's text: personal data keeps it local (or leaves it out)
    judge_caller = GuardedCaller(caller, pii_scan, settings.privacy, registry)
    self_check = build_self_check(settings, judge_caller, registry, moderation)
    if self_check is not None:
        self_check.check = GuardedCheck(self_check.check)
    limiter = build_limiter(settings.limits, PriceEstimate(prices, settings.costs.cny_per_usd))
    cache = ResponseCache(settings.cache, metrics, home=settings.home)
    capture = build_capture(settings, detector, on_drop=dropped(SampleLog.name))

    stages: list[Stage | None] = [
        Admit(registry, router.models),
        Guard(settings.limits),
        moderation,
        pii_scan,
        self_check,  # after the scan: its judge must know what the request carries
        experiments,
        router,
        ModelRoute(registry, router.models),
        PrivacyGuard(settings.privacy, registry, detector),
        ScopeTargets(router.models),
        Capabilities(),
        shadow if shadow.enabled else None,  # samples auto requests; labels them when finished
        cache,
        limiter,
        capture,
        ColdStart(),  # the local model's load time, into the answer's headers
    ]
    recorders: list[Callable[[RequestContext], None]] = [
        unscanned_model_name(detector, served),  # first: every record reads ctx.model
        request_log.append,
        metrics.observe,
    ]
    if settings.auth.audit_requests:
        recorders.append(audit.record)
    tracer, exporter, log_line = build_telemetry(settings.telemetry)
    if log_line is not None:
        recorders.append(log_line)
    meter = Meter(settings.costs, prices, registry)
    gateway = Gateway(
        [s for s in stages if s is not None], caller, meter.price, recorders, tracer=tracer
    )
    writers: list[BatchWriter[Any]] = [request_log, audit]
    if capture is not None:
        writers.append(capture.log)
    return GatewayParts(
        gateway=gateway,
        router=router,
        experiments=experiments,
        moderation=moderation,
        cache=cache,
        limiter=limiter,
        capture=capture,
        shadow=shadow if shadow.enabled else None,
        breakers=breakers,
        request_log=request_log,
        audit=audit,
        review=review,
        writers=writers,
        exporter=exporter,
    )
