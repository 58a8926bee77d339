"""The local engine through thrifty against llama.cpp itself, for both bundled models.

Four measurements per model, in the same run and on the same threads (default: thrifty's):

- llama-bench: llama.cpp's own single-stream figures, prompt processing (pp128) and text
  generation (tg64), no HTTP at all;
- llama-batched-bench at --clients sequences (default 8): llama.cpp decoding that many
  sequences in one batch, no HTTP and no scheduling, the ceiling for N concurrent streams;
- llama-server started directly, with exactly the flags thrifty gives it
  (`LlamaServerBackend.command`);
- `thrifty serve -m MODEL`, which runs its own llama-server behind the gateway.

llama-server and thrifty get the same streamed requests, taking turns: a fixed prompt of 120-140
tokens (plus a request number, so that thrifty's response cache never answers), temperature 0,
`ignore_eos` so every answer is exactly --max-tokens long, and `cache_prompt: false` so the engine
processes the whole prompt every time instead of reusing its slot's cache.

Every figure is the best of its repetitions (llama-bench's --reps, the --requests single streams,
the --rounds bursts): load from other processes only ever slows a run down, so on a shared
machine the best repetition is the one closest to what the engine can do.

Single stream: prompt tok/s (prompt tokens / time to the first token's chunk), generation tok/s
(tokens after the first / time from first to last), TTFT, and "text ms", the time to the first
chunk with text in it (thrifty's moderation holds a stream's last few characters back, so its
first chunks can be empty). N concurrent streams (--clients, default 8; more than llama-server's
4 slots, so some queue): aggregate rates, every token of a kind divided by the burst's wall time.

    .venv/bin/python benchmarks/local_engine.py                   # both models, ~2-3 min on 2 cores
    .venv/bin/python benchmarks/local_engine.py -m smollm2-135m --requests 2 --reps 1
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from _common import (
    BIN,
    Server,
    free_port,
    load_average,
    machine_header,
    percentile,
    ratio,
    table,
    thrifty_serve,
)
from thrifty.backends.llamacpp import LlamaServerBackend, default_threads
from thrifty.backends.models import BUNDLED, resolve_model
from thrifty.config import LocalSettings

TARGET_SINGLE = 0.95  # thrifty generation tok/s / llama-bench tg, one stream
TARGET_CONCURRENT = 0.95  # thrifty aggregate generation tok/s / llama-server's, N streams
TARGET_BATCHED = 0.90  # thrifty aggregate generation tok/s / llama-batched-bench's, N streams
PROMPT_TOKENS = 128  # llama-bench's pp size; the prompt below comes close in both models
PROMPT = (
    "Read the following notes and then write a short summary for a busy manager. The team moved "
    "the billing service from a single large server to three smaller ones behind a load "
    "balancer. Response times fell by a third during the day, but the nightly batch job that "
    "prepares invoices now takes longer, because it still runs on one machine and competes with "
    "daytime traffic when it overruns. Two customers reported duplicate invoices last month; the "
    "cause was a retry in the payment client that did not check whether the first attempt had "
    "succeeded. The fix is merged."
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One streamed answer, timed at the client."""

    ttft_s: float  # to the first token's chunk
    first_text_s: float  # to the first chunk with text in it
    decode_s: float  # first content token to last
    prompt_tokens: int
    completion_tokens: int

    @property
    def prompt_tps(self) -> float:
        return self.prompt_tokens / self.ttft_s

    @property
    def decode_tps(self) -> float:
        return (self.completion_tokens - 1) / self.decode_s if self.decode_s > 0 else float("nan")


@dataclass(frozen=True, slots=True)
class Burst:
    """N streams started together, and the wall time until the last one finished."""

    samples: list[Sample]
    wall_s: float

    @property
    def gen_tps(self) -> float:
        return sum(s.completion_tokens for s in self.samples) / self.wall_s

    @property
    def prompt_tps(self) -> float:
        return sum(s.prompt_tokens for s in self.samples) / self.wall_s

    @property
    def ttft_ms(self) -> float:
        return percentile([s.ttft_s for s in self.samples], 0.5) * 1000


@dataclass(slots=True)
class EngineRun:
    """What one server did, reported as the best of each kind of repetition."""

    singles: list[Sample] = field(default_factory=list)
    bursts: list[Burst] = field(default_factory=list)

    @property
    def prompt_tps(self) -> float:
        return max(s.prompt_tps for s in self.singles)

    @property
    def decode_tps(self) -> float:
        return max(s.decode_tps for s in self.singles)

    @property
    def ttft_ms(self) -> float:
        return min(s.ttft_s for s in self.singles) * 1000

    @property
    def first_text_ms(self) -> float:
        return min(s.first_text_s for s in self.singles) * 1000

    @property
    def burst(self) -> Burst:
        return max(self.bursts, key=lambda b: b.gen_tps)


def request_body(max_tokens: int, nonce: int) -> dict[str, Any]:
    """The benchmark's request; `nonce` keeps thrifty's response cache from answering it."""
    return {
        "model": "local",  # thrifty's name for its engine; llama-server answers to any name
        "messages": [{"role": "user", "content": f"{PROMPT} (#{nonce})"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,  # llama-server extension: always generate max_tokens tokens
        "cache_prompt": False,  # llama-server extension: process the whole prompt every time
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def stream_once(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    first = last = text_at = None
    tokens = 0
    usage: dict[str, Any] = {}
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
        route = response.headers.get("x-thrifty-route", "local")  # llama-server sends none
        if route != "local":
            raise RuntimeError(f"thrifty answered from {route}, not the engine: nothing measured")
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            chunk = orjson.loads(payload)
            usage = chunk.get("usage") or usage
            choices = chunk.get("choices") or [{}]
            content = (choices[0].get("delta") or {}).get("content")
            # A chunk with content, even "", is a token from the engine: thrifty's moderation
            # holds the last characters of a stream back, so its first chunks can be empty.
            if isinstance(content, str):
                last = time.perf_counter()
                first = first or last
                text_at = text_at or (last if content else None)
                tokens += 1
    if first is None or last is None or text_at is None:
        raise RuntimeError(f"{url} streamed no tokens")
    return Sample(
        first - started,
        text_at - started,
        last - first,
        int(usage.get("prompt_tokens", 0)),
        int(usage.get("completion_tokens", tokens)),
    )


async def compare(urls: dict[str, str], args: argparse.Namespace) -> dict[str, EngineRun]:
    """Send the same requests to each engine (name -> chat URL), the engines taking turns.

    Taking turns, a passing load on the machine hurts both alike, not whichever ran at the time.
    """
    nonces = itertools.count()
    runs = {name: EngineRun() for name in urls}
    timeout = aiohttp.ClientTimeout(total=600)
    # A connection per request: llama-server closes its connection after each stream although
    # it says keep-alive, so a pooled one can be dead when reused. Same for both engines.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def once(url: str) -> Sample:
            return await stream_once(session, url, request_body(args.max_tokens, next(nonces)))

        for url in urls.values():
            await once(url)  # warm-up
        for _ in range(args.requests):
            for name, url in urls.items():
                runs[name].singles.append(await once(url))
        for _ in range(args.rounds):
            for name, url in urls.items():
                started = time.perf_counter()
                samples = await asyncio.gather(*(once(url) for _ in range(args.clients)))
                runs[name].bursts.append(Burst(samples, time.perf_counter() - started))
    return runs


def llama_bench(model_path: Path, args: argparse.Namespace) -> tuple[float, float]:
    """llama-bench's (pp tok/s, tg tok/s), single stream, each the best of its repetitions."""
    command = [str(BIN / "llama-bench"), "-m", str(model_path), "-o", "json"]
    command += ["-p", str(PROMPT_TOKENS), "-n", str(args.max_tokens)]
    command += ["-t", str(args.threads), "-r", str(args.reps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout)
    pp = next(max(r["samples_ts"]) for r in rows if r["n_prompt"] and not r["n_gen"])
    tg = next(max(r["samples_ts"]) for r in rows if r["n_gen"] and not r["n_prompt"])
    return float(pp), float(tg)


def batched_bench(model_path: Path, args: argparse.Namespace) -> tuple[float, float]:
    """llama-batched-bench at --clients sequences: (prompt tok/s, generation tok/s).

    Generation is every generated token over the whole run (prompts included), as thrifty's
    burst figure is every token over the burst's wall time; the best of --reps runs.
    """
    n, pp, tg = args.clients, PROMPT_TOKENS, args.max_tokens
    command = [str(BIN / "llama-batched-bench"), "-m", str(model_path), "--output-format", "jsonl"]
    command += ["-c", str(n * (pp + tg) + 256), "-npp", str(pp), "-ntg", str(tg), "-npl", str(n)]
    command += ["-t", str(args.threads), "-tb", str(args.threads_batch or args.threads)]
    best = (0.0, 0.0)
    for _ in range(args.reps):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = next(json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))
        figures = (float(row["speed_pp"]), n * tg / float(row["t"]))
        best = max(best, figures, key=lambda f: f[1])
    return best


def direct_llama_server(
    name: str, model_path: Path, home: Path, threads: int, tuning: dict[str, Any]
) -> Server:
    """llama-server on its own, started with the command line thrifty would use."""
    settings = LocalSettings(model=name, port=free_port(), threads=threads, **tuning)
    command = LlamaServerBackend(name, settings, home).command(str(model_path))
    log = home / "logs" / f"direct-{name}.log"
    return Server(command, settings.port, log, ready_path="/health")


@dataclass(frozen=True, slots=True)
class ModelResult:
    model: str
    bench_pp: float
    bench_tg: float
    batched: tuple[float, float]  # llama-batched-bench at N sequences: prompt, generation tok/s
    direct: EngineRun
    thrifty: EngineRun


def benchmark_model(model: str, home: Path, args: argparse.Namespace) -> ModelResult:
    path = resolve_model(model, home)
    print(f"{model}: llama-bench ({load_average()})", flush=True)
    pp, tg = llama_bench(path, args)
    print(f"{model}: llama-batched-bench, {args.clients} sequences ({load_average()})", flush=True)
    batched = batched_bench(path, args)
    print(f"{model}: llama-server and thrifty serve, taking turns ({load_average()})", flush=True)
    tuning: dict[str, Any] = {}
    if args.parallel:
        tuning["parallel"] = args.parallel
    if args.threads_batch:
        tuning["threads_batch"] = args.threads_batch
    config = {"local": {"threads": args.threads, **tuning}}
    with (
        direct_llama_server(model, path, home, args.threads, tuning) as server,
        thrifty_serve(home, "-m", model, config=config) as gateway,
    ):
        urls = {"llama-server": server.base_url, "thrifty": gateway.base_url}
        runs = asyncio.run(compare({k: v + "/chat/completions" for k, v in urls.items()}, args))
    return ModelResult(model, pp, tg, batched, runs["llama-server"], runs["thrifty"])


def report(results: list[ModelResult], args: argparse.Namespace) -> str:
    n = args.clients
    headers = ["model", "engine", "1: prompt tok/s", "1: gen tok/s", "1: TTFT ms", "1: text ms"]
    headers += [f"{n}: prompt tok/s", f"{n}: gen tok/s", f"{n}: TTFT p50 ms"]
    rows: list[list[object]] = []
    for r in results:
        rows.append([r.model, f"llama-bench pp{PROMPT_TOKENS}/tg{args.max_tokens}"])
        rows[-1] += [r.bench_pp, r.bench_tg, None, None, None, None, None]
        rows.append([r.model, f"llama-batched-bench npl{n}", None, None, None, None])
        rows[-1] += [r.batched[0], r.batched[1], None]
        for engine, run in (("llama-server", r.direct), ("thrifty", r.thrifty)):
            rows.append([r.model, engine, run.prompt_tps, run.decode_tps, run.ttft_ms])
            rows[-1] += [run.first_text_ms, run.burst.prompt_tps, run.burst.gen_tps]
            rows[-1].append(run.burst.ttft_ms)
    prompt_tokens = sorted({s.prompt_tokens for r in results for s in r.thrifty.singles})
    lines = [
        f"1 = one stream, best of {args.requests} requests; {n} = {n} concurrent streams, "
        f"aggregate, best of {args.rounds} bursts; llama-bench: best of {args.reps} reps.",
        f"{args.max_tokens} tokens per answer, prompt {'/'.join(map(str, prompt_tokens))} "
        f"tokens, {args.threads} threads",
        "",
        table(headers, rows, labels=2),
        "",
        "ratios (same run):",
    ]
    verdicts = []
    for r in results:
        one, direct_one = r.thrifty, r.direct
        single_x = one.decode_tps / r.bench_tg
        many_x = r.thrifty.burst.gen_tps / r.direct.burst.gen_tps
        lines.append(
            f"  {r.model}: one stream, generation: thrifty/llama-bench {single_x:.2f}x "
            f"(llama-server/llama-bench {ratio(direct_one.decode_tps, r.bench_tg)}, "
            f"thrifty/llama-server {ratio(one.decode_tps, direct_one.decode_tps)}); prompt: "
            f"thrifty/llama-bench {ratio(one.prompt_tps, r.bench_pp)}, "
            f"thrifty/llama-server {ratio(one.prompt_tps, direct_one.prompt_tps)}"
        )
        batched_x = r.thrifty.burst.gen_tps / r.batched[1]
        lines.append(
            f"  {r.model}: {n} streams, generation: thrifty/llama-server {many_x:.2f}x, "
            f"thrifty/llama-batched-bench {batched_x:.2f}x (llama-server/llama-batched-bench "
            f"{ratio(r.direct.burst.gen_tps, r.batched[1])}); thrifty {n} streams/one stream "
            f"{ratio(r.thrifty.burst.gen_tps, one.decode_tps)}"
        )
        verdicts.append(
            f"target: {r.model}: one stream >= {TARGET_SINGLE:.2f}x llama-bench: {single_x:.2f}x "
            f"({'met' if single_x >= TARGET_SINGLE else 'MISSED'}); {n} streams >= "
            f"{TARGET_CONCURRENT:.2f}x llama-server: {many_x:.2f}x "
            f"({'met' if many_x >= TARGET_CONCURRENT else 'MISSED'}); {n} streams >= "
            f"{TARGET_BATCHED:.2f}x llama-batched-bench: {batched_x:.2f}x "
            f"({'met' if batched_x >= TARGET_BATCHED else 'MISSED'})"
        )
    lines += verdicts
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "-m",
        "--model",
        dest="models",
        action="append",
        choices=list(BUNDLED),
        help="model to measure (repeatable; default: every bundled model)",
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per answer")
    parser.add_argument("--requests", type=int, default=3, help="single-stream requests")
    parser.add_argument("--clients", type=int, default=8, help="concurrent streams")
    parser.add_argument("--rounds", type=int, default=2, help="bursts of concurrent streams")
    parser.add_argument("--reps", type=int, default=3, help="llama-bench repetitions")
    parser.add_argument(
        "--parallel", type=int, help="engine slots for both servers (default: thrifty's)"
    )
    parser.add_argument(
        "--threads-batch", type=int, help="prompt threads for every engine (default: thrifty's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="engine threads (default: thrifty's, every core but one)",
    )
    args = parser.parse_args()
    args.models = args.models or list(BUNDLED)
    return args


def main() -> None:
    args = parse_args()
    print(machine_header("local engine: thrifty vs llama-server vs llama-bench"), flush=True)
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-") as tmp:
        results = [benchmark_model(model, Path(tmp), args) for model in args.models]
    print()
    print(report(results, args))
    print(f"at end: {load_average()} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
