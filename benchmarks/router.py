"""How long a routing decision takes: PII scan + rules + model route + privacy guard.

    python benchmarks/router.py [--iterations N]

The decision the gateway makes for `model: auto` before any model is called, measured on the
same stages the gateway runs (built from default settings with a cloud upstream configured,
so the full default policy applies). Prompts of about 200 and 4,000 tokens, Chinese and
English, with and without personal data, built by `benchmarks/pii.py`'s text builders.
Baseline in the same run: `json.loads` of the same request body, the least any gateway does.
Target: <= 0.2 ms p50 at 200 tokens with the default detector.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from thrifty.backends import build_registry
from thrifty.config import Settings
from thrifty.context import RequestContext
from thrifty.gateway.pii import PIIDetector
from thrifty.gateway.pipeline import Stage
from thrifty.gateway.privacy import PIIScan, PrivacyGuard
from thrifty.gateway.route import ModelRoute
from thrifty.gateway.router import Router

sys.path.insert(0, os.path.dirname(__file__))
from pii import build_texts


def stages() -> list[Stage]:
    os.environ.pop("THRIFTY_CONFIG", None)
    settings = Settings(
        upstreams=[
            {"name": "deepseek", "base_url": "http://127.0.0.1:9/v1",
             "models": {"deepseek-chat": "deepseek-chat"}},
        ]
    )  # fmt: skip
    registry = build_registry(settings)  # nothing is started: decisions only
    detector = PIIDetector()
    return [
        PIIScan(detector, settings.privacy),
        Router(settings.router, registry),
        ModelRoute(registry),
        PrivacyGuard(settings.privacy, registry, detector),
    ]


async def decide(pipeline: list[Stage], body: dict[str, Any]) -> RequestContext:
    ctx = RequestContext("chat", body, "auto", False)
    for stage in pipeline:
        await stage.on_request(ctx)
    return ctx


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(pipeline: list[Stage], text: str, iterations: int) -> tuple[float, float, str]:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    route = (await decide(pipeline, body)).reason
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        await decide(pipeline, body)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return percentile(samples, 0.5), percentile(samples, 0.99), route


def baseline(text: str, iterations: int) -> float:
    raw = json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        json.loads(raw)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    pipeline = stages()
    print(f"# routing decision time (python {platform.python_version()}, {os.cpu_count()} cores,"
          f" load {os.getloadavg()[0]:.2f})")  # fmt: skip
    print(f"{'prompt':<28} {'p50 µs':>8} {'p99 µs':>8} {'json.loads p50':>15}  decision")
    for name, text in build_texts().items():
        n = args.iterations if "200" in name else max(200, args.iterations // 10)
        p50, p99, reason = await measure(pipeline, text, n)
        print(f"{name:<28} {p50:>8.1f} {p99:>8.1f} {baseline(text, n):>15.1f}  {reason}")
    print("target: <= 200 µs p50 at ~200 tokens")


if __name__ == "__main__":
    asyncio.run(main())
