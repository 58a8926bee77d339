"""What tracing costs per request, in-process: the request path, and the exporter's encoding.

The gateway's stage loop with and without the tracer's wrappers (13 request halves, the meter,
the trace opened and closed as `Gateway` does), measured in the same run; then `otlp.encode`
per trace, the exporter thread's share, for a request shaped like a real one (~16 spans). The
end-to-end figure is `overhead_vs_commit.py --traced` (noisier: whole processes on a shared
machine).

    .venv/bin/python benchmarks/tracing_cost.py [-n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from _common import machine_header, table
from thrifty.context import Attempt, RequestContext
from thrifty.gateway.otlp import encode
from thrifty.gateway.tracing import Tracer, TraceRecord

STAGES = 13


class _Stage:
    async def on_request(self, ctx: RequestContext) -> None:
        return None


class _Keep:
    """Keeps one exporter batch: the real exporter drains its queue every second, so holding
    every trace would measure the garbage collector walking them instead."""

    def __init__(self) -> None:
        self.traces: list[TraceRecord] = []

    def submit(self, trace: TraceRecord) -> None:
        if len(self.traces) < 512:
            self.traces.append(trace)


def _ctx() -> RequestContext:
    ctx = RequestContext("chat", {"max_tokens": 64, "temperature": 0}, "auto", False)
    ctx.usage = {"prompt_tokens": 120, "completion_tokens": 40}
    ctx.reply = {"id": "chatcmpl-1", "choices": [{"finish_reason": "stop"}]}
    ctx.cost_nanos, ctx.baseline_nanos = 12_000, 56_000
    ctx.attempts.append(Attempt("deepseek-chat", "deepseek", 200, latency_s=0.2))
    return ctx


async def _bare(n: int) -> float:
    halves = [_Stage().on_request for _ in range(STAGES)]
    start = time.process_time()
    for _ in range(n):
        ctx = _ctx()
        for on_request in halves:
            await on_request(ctx)
    return (time.process_time() - start) / n


async def _traced(n: int, keep: _Keep) -> float:
    tracer = Tracer(keep)
    halves = [tracer.stage(_Stage()) for _ in range(STAGES)]  # type: ignore[arg-type]
    meter = tracer.meter(lambda ctx: None)
    start = time.process_time()
    for _ in range(n):
        ctx = _ctx()
        tracer.open(ctx)
        for on_request in halves:
            await on_request(ctx)
        meter(ctx)
        ctx.finished_at = time.perf_counter()
        tracer.close(ctx)
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine_header("tracing's CPU per request, in-process"), flush=True)
    bare: list[float] = []
    traced: list[float] = []
    encoded: list[float] = []
    spans = 0
    for _ in range(args.rounds):  # alternating, so a noisy neighbour slows both alike
        keep = _Keep()
        bare.append(asyncio.run(_bare(args.requests)))
        traced.append(asyncio.run(_traced(args.requests, keep)))
        start = time.process_time()
        encode(keep.traces, "thrifty")  # one of the exporter's batches
        encoded.append((time.process_time() - start) / len(keep.traces))
        spans = len(keep.traces[0].spans)
    us = 1e6
    rows: list[list[Any]] = [
        ["stage loop, tracing off", statistics.median(bare) * us],
        ["stage loop, tracing on", statistics.median(traced) * us],
        ["  request path added", (statistics.median(traced) - statistics.median(bare)) * us],
        [f"exporter: encode ({spans} spans)", statistics.median(encoded) * us],
    ]
    print(table(["median of rounds", "CPU us/request"], rows))


if __name__ == "__main__":
    main()
