"""Shadow evaluation: label routed requests by answering them twice, off the client's path.

For a sampled share (``router.shadow.sample``) of `auto` requests, once the client has its answer
the same request is sent to the *other* candidate (local if the cloud answered, the cloud if
local did), and the cheaper answer is labelled good enough or not:

- a request that carries a reference (``"thrifty": {"reference": "...", "scorer": "contains"}``
  in its body; any `thrifty eval` scorer) is scored against it, both answers;
- otherwise a judge model (``router.shadow.judge``, default the configured cloud) rates the
  cheaper answer 1-10 with the stronger one as its reference; 7 or more is good enough.

Both answers become ``shadow`` outcomes (`thrifty.store.outcomes`) for `thrifty route train`.

What it never does, and what it costs:

- a request in which the privacy scan found personal data is never shadowed (neither the other
  target nor the judge sees it), so no outcome ever holds personal data;
- the money it spends (the second answer, the judge) is counted per UTC day in this process,
  priced as the meter prices requests; a shadow whose expected cost would pass
  ``max_usd_per_day`` is skipped (and counted), so the cap holds with the estimate's margin;
- it runs as a background task after the answer was sent: the client's latency is unchanged,
  though the shadow call uses the same local engine and upstream as client traffic (keep the
  sample small on a busy engine).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from thrifty.backends import Registry, Reply, Target
from thrifty.config import ShadowSettings
from thrifty.context import RequestContext
from thrifty.costs.usage import TokenUsage
from thrifty.errors import InvalidRequest
from thrifty.gateway.stage import Stage

if TYPE_CHECKING:
    from thrifty.gateway.router import Router

logger = logging.getLogger(__name__)

GOOD_ENOUGH = 7.0  # a judge's rating (1-10) at or above which the cheaper answer passes
_JUDGE_TOKENS = 256


def answer_text(payload: dict[str, Any] | None) -> str | None:
    try:
        choice = (payload or {})["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


class Shadow(Stage):
    """A stage (samples, keeps the answer) and a finisher (answers again, labels, stores)."""

    def __init__(
        self,
        settings: ShadowSettings,
        registry: Registry,
        router: Router,
        database_url: str,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.router = router
        self.database_url = database_url
        self.rng = rng or random.Random()
        self.clock = clock
        self.judge = registry.resolve(settings.judge or router.cloud or "")
        if settings.judge and self.judge is None:
            raise ValueError(f"router.shadow.judge names unknown model {settings.judge!r}")
        self._sampled: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._day = ""
        self.spent_nanos = 0  # this UTC day
        self.counts = {"shadowed": 0, "skipped_pii": 0, "skipped_cap": 0, "failed": 0}

    @property
    def enabled(self) -> bool:
        return self.settings.sample > 0

    # -- on the request's way in: sample, and keep a streamed answer whole ---------------------

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if not self.enabled or ctx.model not in self.router.models or not ctx.targets:
            return None
        ext = ctx.body.get("thrifty")
        if isinstance(ext, dict) and "reference" in ext:
            from thrifty.evals.scorers import SCORERS

            if str(ext.get("scorer") or "contains") not in SCORERS:
                raise InvalidRequest(
                    f"thrifty.scorer: one of {', '.join(SCORERS)}", param="thrifty.scorer"
                )
        if self.rng.random() >= self.settings.sample:
            return None
        self._sampled.add(ctx.id)
        ctx.keep_reply = True  # the judge needs the whole answer, streamed or not
        return None

    # -- after the answer: off the hot path --------------------------------------------------

    def on_finish(self, ctx: RequestContext) -> None:
        if ctx.id not in self._sampled:
            return
        self._sampled.discard(ctx.id)
        if ctx.pii:  # never to a cloud, never to a judge, never stored
            self.counts["skipped_pii"] += 1
            return
        served = answer_text(ctx.reply)
        if ctx.status != 200 or ctx.route == "cache" or served is None:
            return
        first, other = ctx.answered_by, self._other(ctx)
        if first is None or other is None:
            return
        expected = self._expected_nanos(ctx, other)
        if not self._reserve(expected):
            self.counts["skipped_cap"] += 1
            logger.info("shadow skipped for %s: the daily cap is reached", ctx.id)
            return
        task = asyncio.get_running_loop().create_task(
            self._run(ctx, first, other, served, expected)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _other(self, ctx: RequestContext) -> Target | None:
        answered = ctx.answered_by
        for target in ctx.targets:
            if answered is not None and target.route != answered.route:
                return target
        for candidate in ctx.candidates:
            if answered is not None and candidate.target.route != answered.route:
                return candidate.target
        return None

    def _expected_nanos(self, ctx: RequestContext, other: Target) -> int:
        from thrifty.gateway.router import prompt_tokens

        costs = self.router.costs
        at = datetime.now(UTC)
        tokens_in = int(prompt_tokens(ctx))
        tokens_out = costs.output_tokens(None)
        total = costs.nanos(other, tokens_in, tokens_out, at) or 0
        if self.judge is not None and _reference(ctx) is None:
            judge_in = 2 * tokens_in + 2 * tokens_out + 200
            total += costs.nanos(self.judge, judge_in, _JUDGE_TOKENS, at) or 0
        return total

    def _reserve(self, nanos: int) -> bool:
        day = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")
        if day != self._day:
            self._day, self.spent_nanos = day, 0
        cap = int(self.settings.max_usd_per_day * 1e9)
        if self.spent_nanos + nanos > cap:
            return False
        self.spent_nanos += nanos
        return True

    def _settle(self, reserved: int, actual: int) -> None:
        self.spent_nanos += actual - reserved

    async def _run(
        self, ctx: RequestContext, first: Target, other: Target, served: str, reserved: int
    ) -> None:

        spent = 0
        try:
            body = other.request_body(ctx.body, ctx.stream)
            body.pop("stream", None)
            body.pop("stream_options", None)
            started = time.perf_counter()
            reply = await other.backend.complete(ctx.endpoint, body)
            seconds = time.perf_counter() - started
            second = answer_text(reply.payload) or ""
            spent += self._cost(other, reply.usage, seconds)
            answers = {first.route: (served, ctx.cost_nanos), other.route: (second, spent)}
            cheap, strong = self._cheap_and_strong(first, other)
            labels, judge_cost = await self._label(ctx, cheap, strong, answers)
            spent += judge_cost
            await asyncio.to_thread(self._store, ctx, answers, labels)
            self.counts["shadowed"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a shadow must never hurt anything but itself
            self.counts["failed"] += 1
            logger.warning("shadow evaluation of %s failed: %s", ctx.id, exc)
        finally:
            self._settle(reserved, spent)

    def _cheap_and_strong(self, a: Target, b: Target) -> tuple[Target, Target]:
        """The cheaper target (local before a cloud; else by the router's price) first."""
        if (a.upstream is None) != (b.upstream is None):
            return (a, b) if a.upstream is None else (b, a)
        return a, b

    def _cost(self, target: Target, usage: dict[str, Any] | None, seconds: float) -> int:
        costs = self.router.costs
        if target.upstream is None:
            loaded = self.router.settings.cost_basis == "fully_loaded"
            return costs.local.cost_nanos(seconds, fully_loaded=loaded)
        if usage is None:
            return 0
        nanos = costs.prices.cost_nanos(
            target.model, TokenUsage.from_openai(usage), datetime.now(UTC)
        )
        return nanos or 0

    async def _label(
        self,
        ctx: RequestContext,
        cheap: Target,
        strong: Target,
        answers: dict[str, tuple[str, int | None]],
    ) -> tuple[dict[str, tuple[float, bool | None]], int]:
        """route -> (score 0-1, ok), and what judging cost."""
        from thrifty.evals.scorers import SCORERS

        reference = _reference(ctx)
        if reference is not None:
            expected, scorer = reference
            verdicts = {
                route: SCORERS[scorer](text, expected) for route, (text, _) in answers.items()
            }
            return {r: (v.score, v.passed) for r, v in verdicts.items()}, 0
        if self.judge is None:
            raise RuntimeError("no judge: configure router.shadow.judge or a cloud")
        from thrifty.evals.judge import generic_prompt, parse_rating

        messages = list(ctx.body.get("messages") or [])
        prompt = generic_prompt(messages, answers[cheap.route][0], answers[strong.route][0])
        body = {"model": self.judge.model, "messages": prompt, "max_tokens": _JUDGE_TOKENS}
        body["temperature"] = 0
        started = time.perf_counter()
        reply = await self.judge.backend.complete("chat", body)
        cost = self._cost(self.judge, reply.usage, time.perf_counter() - started)
        rating = parse_rating(answer_text(reply.payload) or "")
        if rating is None:
            raise RuntimeError("the judge's reply has no 1-10 rating")
        ok = rating >= GOOD_ENOUGH
        return {cheap.route: (rating / 10, ok), strong.route: (1.0, True)}, cost

    def _store(
        self,
        ctx: RequestContext,
        answers: dict[str, tuple[str, int | None]],
        labels: dict[str, tuple[float, bool | None]],
    ) -> None:
        from thrifty.store.db import connect
        from thrifty.store.migrations import migrate
        from thrifty.store.outcomes import Outcome, add_outcomes

        features = self.router.features(ctx)
        judge = "reference" if _reference(ctx) is not None else f"judge:{self.judge_name}"
        rows = [
            Outcome(
                "shadow",
                route,
                features.fingerprint,
                labels[route][1],
                score=labels[route][0],
                cost_nanos=cost,
                text=features.text,  # no personal data: such requests are never shadowed
                task=features.task,
                features=dict(features.cheap),
                ref=ctx.id,
                request_id=ctx.id,
                tenant=ctx.tenant,
                detail=judge,
            )
            for route, (_, cost) in answers.items()
        ]
        conn = connect(self.database_url)
        try:
            migrate(conn)
            add_outcomes(conn, rows)
        finally:
            conn.close()

    @property
    def judge_name(self) -> str:
        return self.judge.route if self.judge is not None else ""

    async def close(self) -> None:
        """Let running shadows finish (their outcomes are wanted), briefly."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)


def _reference(ctx: RequestContext) -> tuple[Any, str] | None:
    ext = ctx.body.get("thrifty")
    if not isinstance(ext, dict) or "reference" not in ext:
        return None
    scorer = str(ext.get("scorer") or "contains")
    from thrifty.evals.scorers import SCORERS

    if scorer not in SCORERS:
        return None
    return ext["reference"], scorer
