"""thrifty's own cost per request: the same load straight to a fast upstream, then through thrifty.

The upstream is the fake from `tests/fakes/upstream.py` (a raw ASGI app under uvicorn, about 0.1
CPU-ms a request), so what thrifty adds stands out. thrifty runs as a real `thrifty serve
--no-local` subprocess with that upstream as its only one. For each mode (whole answers, streams)
and each concurrency, N requests go first to the upstream directly, then through thrifty; the
table shows throughput, p50/p99 latency, the latency thrifty adds, and the server's CPU time per
request read from /proc/<pid>/stat (that process only, all its threads, none of its children).

The load generator runs in this process: raw asyncio + httptools over C keep-alive connections,
cheaper than any HTTP client library, because on a small machine it competes for the same cores.

    .venv/bin/python benchmarks/gateway_overhead.py                      # N=2000, C=1 and 8, both
    .venv/bin/python benchmarks/gateway_overhead.py -n 500 -c 4 --stream
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    Connection,
    cpu_seconds,
    load_average,
    machine_header,
    percentile,
    post_chat,
    ratio,
    start_fake_upstream,
    table,
    thrifty_serve,
)

TARGET_CPU_MS = 1.0  # gateway CPU per request
TARGET_ADDED_P50_MS = 1.0  # added median latency at concurrency 1
MODEL = "fake-chat"
PROMPT = (
    "Summarize in two sentences why caching model answers cuts the cost of an LLM application, "
    "and name one case where a cached answer would be wrong."
)


def request_bytes(port: int, stream: bool, nonce: int) -> bytes:
    """One POST /v1/chat/completions, ready to write to a keep-alive connection.

    Every request's prompt is its own (`nonce`): thrifty's response cache would answer repeated
    ones, and the benchmark would measure the cache instead of the way to the upstream.
    """
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": f"{PROMPT} (#{nonce})"},
        ],
        "max_tokens": 64,
        "temperature": 0,
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return post_chat(port, body)


@dataclass(frozen=True, slots=True)
class Pass:
    """One measured pass: N requests at concurrency C against one server."""

    latencies_s: list[float]
    wall_s: float
    errors: int
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.wall_s

    def p_ms(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_s * 1000 / len(self.latencies_s)


@dataclass(frozen=True, slots=True)
class Target:
    """A server under load: where it listens, and the process whose CPU time is counted."""

    port: int
    pid: int


async def run_pass(
    target: Target, stream: bool, requests: int, concurrency: int, nonces: Iterator[int]
) -> Pass:
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(Connection, "127.0.0.1", target.port))[1]
        for _ in range(concurrency)
    ]
    latencies: list[float] = []
    errors = 0
    left = requests

    async def client(connection: Connection) -> None:
        nonlocal left, errors
        while left > 0:
            left -= 1
            request = request_bytes(target.port, stream, next(nonces))
            started = time.perf_counter()
            status = await connection.send(request)
            latencies.append(time.perf_counter() - started)
            errors += status != 200

    cpu_before = cpu_seconds(target.pid)
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    wall = time.perf_counter() - started
    return Pass(latencies, wall, errors, cpu_seconds(target.pid) - cpu_before)


@dataclass(frozen=True, slots=True)
class Comparison:
    stream: bool
    concurrency: int
    direct: Pass
    through: Pass

    @property
    def mode(self) -> str:
        return "stream" if self.stream else "whole"

    def added_ms(self, q: float) -> float:
        return self.through.p_ms(q) - self.direct.p_ms(q)


def warmup_requests(args: argparse.Namespace) -> int:
    """Requests each target gets in the warm-up pass."""
    modes = 1 if args.stream is not None else 2
    requests: int = args.requests
    return modes * max(1, min(200, requests // 10))


async def measure(args: argparse.Namespace, direct: Target, through: Target) -> list[Comparison]:
    modes = [s for s in (False, True) if args.stream in (None, s)]
    nonces = itertools.count()
    for target in (direct, through):  # one warm-up pass: pools, lazy imports, SQLite
        for stream in modes:
            warmup = warmup_requests(args) // len(modes)
            await run_pass(target, stream, warmup, max(args.concurrency), nonces)
    results = []
    for stream in modes:
        for c in args.concurrency:
            first = await run_pass(direct, stream, args.requests, c, nonces)
            second = await run_pass(through, stream, args.requests, c, nonces)
            results.append(Comparison(stream, c, first, second))
    return results


def report(results: Sequence[Comparison], requests: int) -> str:
    headers = ["mode", "conc", "path", "req/s", "p50 ms", "p99 ms", "added p50", "added p99"]
    headers += ["server CPU ms/req", "errors"]
    rows: list[list[object]] = []
    for r in results:
        d, t = r.direct, r.through
        rows.append([r.mode, r.concurrency, "direct"])
        rows[-1] += [d.rps, d.p_ms(0.5), d.p_ms(0.99), None, None, d.cpu_ms_per_request, d.errors]
        rows.append([r.mode, r.concurrency, "thrifty", t.rps, t.p_ms(0.5), t.p_ms(0.99)])
        rows[-1] += [r.added_ms(0.5), r.added_ms(0.99), t.cpu_ms_per_request, t.errors]
    lines = [
        f"{requests} requests per row; direct = the fake upstream alone (its CPU in the CPU "
        "column), thrifty = through `thrifty serve` (the gateway process's CPU).",
        "",
        table(headers, rows, labels=3),
        "",
        "thrifty vs baseline (direct to the same upstream, same run):",
    ]
    for r in results:
        d, t = r.direct, r.through
        lines.append(
            f"  {r.mode:<6} c={r.concurrency:<3} throughput {ratio(t.rps, d.rps)}, "
            f"p50 {ratio(t.p_ms(0.5), d.p_ms(0.5))} (+{r.added_ms(0.5):.2f} ms), "
            f"p99 +{r.added_ms(0.99):.2f} ms, CPU {t.cpu_ms_per_request:.2f} ms/req "
            f"({ratio(t.cpu_ms_per_request, d.cpu_ms_per_request)} the upstream's)"
        )
    worst_cpu = max(r.through.cpu_ms_per_request for r in results)
    lines.append(
        f"target: gateway CPU <= {TARGET_CPU_MS:.0f} ms/request: worst {worst_cpu:.2f} ms "
        f"({'met' if worst_cpu <= TARGET_CPU_MS else 'MISSED'})"
    )
    for r in (r for r in results if r.concurrency == 1):
        added = r.added_ms(0.5)
        lines.append(
            f"target: added p50 at concurrency 1 <= {TARGET_ADDED_P50_MS:.0f} ms: {r.mode} "
            f"{added:.2f} ms ({'met' if added <= TARGET_ADDED_P50_MS else 'MISSED'})"
        )
    return "\n".join(lines)


def run(main: Callable[[], Coroutine[Any, Any, list[Comparison]]]) -> list[Comparison]:
    """Run the load generator on uvloop when it is installed: the generator should be cheap."""
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    return asyncio.run(main())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--requests", type=int, default=2000, help="requests per row")
    parser.add_argument(
        "-c",
        "--concurrency",
        type=int,
        action="append",
        help="concurrent connections (repeatable; default: 1 and 8)",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--stream", dest="stream", action="store_const", const=True, help="streams only"
    )
    modes.add_argument(
        "--no-stream", dest="stream", action="store_const", const=False, help="whole answers only"
    )
    parser.set_defaults(stream=None)  # None: both
    args = parser.parse_args()
    args.concurrency = args.concurrency or [1, 8]
    return args


def main() -> None:
    args = parse_args()
    print(machine_header("gateway overhead: thrifty in front of a fast fake upstream"), flush=True)
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-") as tmp:
        home = Path(tmp)
        with start_fake_upstream() as fake:
            upstream = {"name": "fake", "base_url": fake.url, "models": {MODEL: MODEL}}
            config = {"upstreams": [upstream]}
            with thrifty_serve(home, "--no-local", config=config) as gateway:
                direct, through = Target(fake.port, fake.pid), Target(gateway.port, gateway.pid)
                results = run(lambda: measure(args, direct, through))
            received = int(fake.stats()["requests"])
    print(report(results, args.requests))
    sent = 2 * sum(len(r.through.latencies_s) for r in results) + 2 * warmup_requests(args)
    if received != sent:  # thrifty answered some requests itself: not what this measures
        print(f"WARNING: the upstream received {received} requests of the {sent} sent to it")
    print(f"at end: {load_average()} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
