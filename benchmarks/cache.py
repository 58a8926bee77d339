"""The response cache: semantic accuracy on held-out pairs, hit latency, throughput, its parts.

Accuracy (first, in this process): tests/data/cache_pairs_heldout.jsonl, written and committed
before any tuning (near-misses of five kinds, paraphrases; English and Chinese), less the few
pairs that also appear in the tuning files. Each pair's first question is cached, its second
looked up. Three caches in the same run, on the same embeddings:

- similarity only, at the model's fixed threshold (a plain semantic cache);
- today's cache before issue #21: the fixed threshold and the old lexical checks
  (`_cache_baseline.py`);
- the new cache: the content guard and the learned thresholds at `cache.max_error_rate`
  (no evidence yet: the calibration prior alone).

Then the new cache's semantic lookup inside the cache stage (embed, guard, search, answer) with
every first question indexed in one partition, beside the embedding alone.

A `thrifty serve --no-local` subprocess answers from the fake upstream of `tests/fakes/upstream.py`
(the baseline: a miss goes there), with the exact and the semantic cache on. The questions are
the paraphrase pairs of tests/data/paraphrases.jsonl: each pair's first question is asked once
(a miss, stored), then

- exact hits: the same questions again, one connection;
- semantic hits: the second question of each pair the semantic cache answered (a semantic hit
  stores nothing, so the same question hits semantically every time), one connection;
- throughput: exact hits over 8 connections, and the gateway's CPU time per hit.

Then the parts, in this process: one embedding per model, and the vector search that each
replica runs in its own index, against what a lookup would cost if it read the vectors from Redis
each time (Debian's Redis has no vector search).

    .venv/bin/python benchmarks/cache.py                         # default model, 2000 hits a row
    .venv/bin/python benchmarks/cache.py -n 500 --model multilingual-e5-small
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from _common import (
    ROOT,
    Connection,
    cpu_seconds,
    free_port,
    load_average,
    machine_header,
    percentile,
    post_chat,
    start_fake_upstream,
    table,
    thrifty_serve,
)

PAIRS = ROOT / "tests" / "data" / "paraphrases.jsonl"
DATA = ROOT / "tests" / "data"
HELDOUT = DATA / "cache_pairs_heldout.jsonl"
TUNING = (DATA / "cache_pairs_tuning.jsonl", DATA / "paraphrases.jsonl")
TARGET_PRECISION, TARGET_RECALL, TARGET_LOOKUP_P99_MS = 0.99, 0.5, 6.0
MODEL = "fake-chat"
TARGET_EXACT_P99_MS = 2.0
TARGET_SEMANTIC_P99_MS = 15.0


def request_bytes(port: int, question: str) -> bytes:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 64,
    }
    return post_chat(port, body)


@dataclass(slots=True)
class Pass:
    latencies_s: list[float]
    outcomes: list[str]
    wall_s: float
    server_cpu_s: float

    def p_ms(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu_s * 1000 / max(1, len(self.latencies_s))

    def share(self, prefix: str) -> float:
        return sum(o.startswith(prefix) for o in self.outcomes) / max(1, len(self.outcomes))


async def run_pass(port: int, pid: int, questions: list[str], requests: int, conc: int) -> Pass:
    loop = asyncio.get_running_loop()
    connections = [
        (await loop.create_connection(Connection, "127.0.0.1", port))[1] for _ in range(conc)
    ]
    payloads = [request_bytes(port, q) for q in questions]
    latencies: list[float] = []
    outcomes: list[str] = []
    sent = 0

    async def client(connection: Connection) -> None:
        nonlocal sent
        while sent < requests:
            payload = payloads[sent % len(payloads)]
            sent += 1
            started = time.perf_counter()
            status = await connection.send(payload)
            outcome = connection.cache
            latencies.append(time.perf_counter() - started)
            outcomes.append(outcome if status == 200 else f"error {status}")

    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    return Pass(latencies, outcomes, time.perf_counter() - started, cpu_seconds(pid) - cpu_before)


async def through_gateway(args: argparse.Namespace, port: int, pid: int) -> dict[str, Pass]:
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    firsts = sorted({r["a"] for r in rows})
    seconds = sorted({r["b"] for r in rows if r["same"]} - set(firsts))
    passes: dict[str, Pass] = {}
    first = passes["miss (to the upstream)"] = await run_pass(port, pid, firsts, len(firsts), 1)
    # a few first questions paraphrase an earlier one (a semantic hit, nothing stored): only
    # the ones that missed are exact hits from now on
    stored = [q for q, o in zip(firsts, first.outcomes, strict=True) if o == "miss"]
    # which paraphrases the semantic cache answers; the ones it misses get stored, so drop them
    probe = await run_pass(port, pid, seconds, len(seconds), 1)
    semantic = [q for q, o in zip(seconds, probe.outcomes, strict=True) if o.startswith("hit-sem")]
    passes["exact hit"] = await run_pass(port, pid, stored, args.requests, 1)
    if semantic:
        passes["semantic hit"] = await run_pass(port, pid, semantic, args.requests, 1)
    passes["exact hit, 8 connections"] = await run_pass(port, pid, stored, args.requests, 8)
    print(
        f"paraphrases answered semantically: {len(semantic)} of {len(seconds)} "
        f"(the rest were different questions or missed)",
        flush=True,
    )
    return passes


def embedding_latency(models: list[str], texts: list[str]) -> list[list[object]]:
    from thrifty.encoders import load_embedder
    from thrifty.errors import MissingExtra

    rows: list[list[object]] = []
    for name in models:
        try:
            embedder = load_embedder(name)
        except MissingExtra:
            rows.append([f"embed one question: {name}", "not installed", None, None])
            continue
        embedder.embed("warm up")
        times = []
        for text in texts:
            started = time.perf_counter()
            embedder.embed(text)
            times.append(time.perf_counter() - started)
        rows.append(
            [
                f"embed one question: {name}",
                len(times),
                percentile(times, 0.5) * 1000,
                percentile(times, 0.99) * 1000,
            ]
        )
    return rows


def exact_lookup(runs: int = 5000) -> list[list[object]]:
    """The exact cache's own share of a hit: key, in-process get, decode (no HTTP, no gateway)."""
    from thrifty.backends import Target
    from thrifty.config import CacheSettings
    from thrifty.context import RequestContext
    from thrifty.gateway.cache import ResponseCache
    from thrifty.gateway.metrics import Metrics

    target = Target("local", cast(Any, None), "smollm2-135m")
    cache = ResponseCache(CacheSettings(), Metrics())
    question = [{"role": "user", "content": "What is the capital of France?"}]
    body = {"model": "local", "messages": question, "temperature": 0}
    answer = {"role": "assistant", "content": "Paris. " * 40}
    reply = {"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]}

    def ctx() -> RequestContext:
        c = RequestContext("chat", dict(body), "local", False)
        c.targets = [target]
        return c

    async def go() -> list[float]:
        first = ctx()
        await cache.on_request(first)
        first.answered_by, first.reply = target, reply
        cache.on_finish(first)
        times = []
        for _ in range(runs):
            c = ctx()
            started = time.perf_counter()
            await cache.on_request(c)
            times.append(time.perf_counter() - started)
        return times

    times = asyncio.run(go())
    p50, p99 = percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000
    return [["exact lookup + hit, in-process (the stage alone)", runs, p50, p99]]


def vector_search(dim: int = 512) -> list[list[object]]:
    """Per-replica numpy index vs reading the vectors from Redis on every lookup."""
    from thrifty.gateway.cache.guard import Signature
    from thrifty.gateway.cache.semantic import SemanticIndex
    from thrifty.gateway.cache.thresholds import Calibration, Thresholds

    rng = np.random.default_rng(0)
    rows: list[list[object]] = []
    redis_server = shutil.which("redis-server")
    for n in (1_000, 10_000, 100_000):
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = SemanticIndex(dim, Thresholds(Calibration(0.99, 0.01), 0.01), n)
        sig = Signature.of("q")
        far = time.time() + 3600
        for i in range(n):
            index.add("one partition", f"k{i}", vectors[i], sig, far)
        times = []
        for i in range(200):
            started = time.perf_counter()
            index.search("one partition", vectors[i], sig)
            times.append(time.perf_counter() - started)
        p50, p99 = percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000
        rows.append([f"search this replica's index, {n:,} vectors", 200, p50, p99])
        if redis_server is not None and n <= 10_000:
            rows.append(redis_scan_row(redis_server, vectors))
    return rows


def redis_scan_row(exe: str, vectors: Any) -> list[object]:
    """Read every vector from a Redis stream and scan it: what each lookup would cost."""
    import redis

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port)
        try:
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            pipe = client.pipeline(transaction=False)
            for i, v in enumerate(vectors):
                pipe.xadd("vec", {"k": f"k{i}", "v": v.tobytes()})
            pipe.execute()
            query = vectors[0]
            times = []
            for _ in range(20):
                started = time.perf_counter()
                entries = client.xrange("vec")
                matrix = np.frombuffer(b"".join(f[b"v"] for _, f in entries), np.float32)
                int(np.argmax(matrix.reshape(len(entries), -1) @ query))
                times.append(time.perf_counter() - started)
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=10)
    return [
        f"read {len(vectors):,} vectors from Redis + scan",
        20,
        percentile(times, 0.5) * 1000,
        percentile(times, 0.99) * 1000,
    ]


# -- accuracy on the held-out pairs ----------------------------------------------------------


def heldout_pairs() -> tuple[list[dict[str, Any]], int]:
    """The held-out pairs less those that also appear in a tuning file; and how many those were."""
    tuned = {
        (r["a"], r["b"])
        for path in TUNING
        for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())
    }
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    kept = [r for r in rows if (r["a"], r["b"]) not in tuned]
    return kept, len(rows) - len(kept)


def accuracy(model: str) -> tuple[list[list[object]], list[list[object]], dict[str, float]]:
    import _cache_baseline as old
    from thrifty.config import CacheSettings
    from thrifty.encoders import load_embedder
    from thrifty.gateway.cache.guard import Signature
    from thrifty.gateway.cache.semantic import SemanticIndex
    from thrifty.gateway.cache.thresholds import Thresholds

    rows, dropped = heldout_pairs()
    embedder = load_embedder(model)
    a = embedder.embed_batch([r["a"] for r in rows])
    b = embedder.embed_batch([r["b"] for r in rows])
    sims = (a * b).sum(axis=1)
    fixed = embedder.threshold
    thresholds = Thresholds(embedder.calibration, CacheSettings().max_error_rate)
    index = SemanticIndex(embedder.dim, thresholds, max_entries=len(rows))
    far = time.time() + 3600
    caches: dict[str, list[bool]] = {"similarity only": [], "today's cache": [], "new cache": []}
    for i, r in enumerate(rows):
        caches["similarity only"].append(bool(sims[i] >= fixed))
        same_old = old.same_question(old.Signature.of(r["a"]), old.Signature.of(r["b"]))
        caches["today's cache"].append(bool(sims[i] >= fixed) and same_old)
        index.add(f"p{i}", f"k{i}", a[i], Signature.of(r["a"]), far)
        found = index.search(f"p{i}", b[i], Signature.of(r["b"])).match
        caches["new cache"].append(found is not None)
    kinds = sorted({r["kind"] for r in rows if not r["same"]})
    print(
        f"held-out pairs: {len(rows)} ({sum(not r['same'] for r in rows)} near-misses, "
        f"{sum(r['same'] for r in rows)} paraphrases; {dropped} left out: also in a tuning file); "
        f"fixed threshold {fixed}, learned thresholds start at {thresholds.threshold} "
        f"for max_error_rate {thresholds.max_error_rate}",
        flush=True,
    )
    summary: list[list[object]] = []
    by_kind: list[list[object]] = []
    figures: dict[str, float] = {}
    for name, hits in caches.items():
        tp = sum(h and r["same"] for h, r in zip(hits, rows, strict=True))
        fp = sum(h and not r["same"] for h, r in zip(hits, rows, strict=True))
        pos = sum(r["same"] for r in rows)
        precision, recall = tp / max(1, tp + fp), tp / max(1, pos)
        recall_by = {
            lang: sum(h for h, r in zip(hits, rows, strict=True) if r["same"] and r["lang"] == lang)
            / max(1, sum(r["same"] and r["lang"] == lang for r in rows))
            for lang in ("en", "zh")
        }
        shown = [f"{x:.3f}" for x in (precision, recall, recall_by["en"], recall_by["zh"])]
        summary.append([name, tp, fp, *shown])
        false_by_kind = [
            sum(h for h, r in zip(hits, rows, strict=True) if r["kind"] == k) for k in kinds
        ]
        by_kind.append([name, *false_by_kind])
        figures[f"{name} precision"], figures[f"{name} recall"] = precision, recall
    return summary, [["false hits by kind", *kinds], *by_kind], figures


def lookup_latency(model: str, runs: int = 400) -> list[list[object]]:
    """The semantic lookup, whole (in the stage) and by part, with today's checks beside it.

    Parts are timed in their own loops, one after the other: interleaved, the BLAS threads of
    one embedding would be spinning while the next part runs.
    """
    import _cache_baseline as old
    from thrifty.backends import Target
    from thrifty.config import CacheSettings
    from thrifty.context import RequestContext
    from thrifty.gateway.cache import ResponseCache
    from thrifty.gateway.cache.guard import Signature
    from thrifty.gateway.metrics import Metrics

    rows, _ = heldout_pairs()
    questions = [rows[i % len(rows)]["b"] for i in range(runs)]
    target = Target("local", cast(Any, None), "smollm2-135m")
    cache = ResponseCache(CacheSettings(semantic=True, semantic_model=model), Metrics())

    def ctx(question: str) -> RequestContext:
        body = {"model": "local", "messages": [{"role": "user", "content": question}]}
        c = RequestContext("chat", {**body, "temperature": 0}, "local", False)
        c.targets = [target]
        return c

    answer = {"role": "assistant", "content": "An answer. " * 20}
    reply = {"choices": [{"index": 0, "message": answer, "finish_reason": "stop"}]}

    async def stage() -> tuple[list[float], int]:
        for r in rows:  # every first question indexed, in one partition
            first = ctx(r["a"])
            await cache.on_request(first)
            first.answered_by, first.reply = target, reply
            cache.on_finish(first)
        await cache.flush()
        times, hits = [], 0
        for q in questions:
            c = ctx(q)
            started = time.perf_counter()
            await cache.on_request(c)
            times.append(time.perf_counter() - started)
            hits += c.cache.startswith("hit-semantic")
            cache._pending.pop(c.id, None)  # nothing stored: every run is a lookup
        return times, hits

    whole, hits = asyncio.run(stage())
    assert cache.embedder is not None and cache.index is not None
    embedder, index = cache.embedder, cache.index
    vectors = embedder.embed_batch(questions)
    (partition,) = index._buckets  # one partition holds every first question

    def timed(fn: Any, *args: Any) -> list[float]:
        times = []
        for i in range(runs):
            started = time.perf_counter()
            fn(i, *args)
            times.append(time.perf_counter() - started)
        return times

    embed = timed(lambda i: embedder.embed(questions[i]))
    new = timed(lambda i: index.search(partition, vectors[i], Signature.of(questions[i])))
    old_index = [old.Signature.of(r["a"]) for r in rows]
    matrix = embedder.embed_batch([r["a"] for r in rows])

    def today(i: int) -> None:  # today's search: one threshold, then the old checks
        sims = matrix @ vectors[i]
        sig = old.Signature.of(questions[i])
        above = np.flatnonzero(sims >= embedder.threshold)
        for j in above[np.argsort(-sims[above])]:
            if old.same_question(sig, old_index[j]):
                break

    before = timed(today)
    cache.close()

    def row(name: str, times: list[float]) -> list[object]:
        return [name, runs, percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000]

    return [
        row(f"semantic lookup in the stage ({len(rows)} indexed, {hits} hits)", whole),
        row("  embed the question (the same model before and after)", embed),
        row("  guard + learned thresholds + search (new)", new),
        row("  lexical checks + fixed threshold + search (today)", before),
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--requests", type=int, default=2000, help="hits per row")
    parser.add_argument(
        "--accuracy-only", action="store_true", help="the held-out accuracy and lookup only"
    )
    parser.add_argument(
        "--model",
        default="use-multilingual-v3",
        choices=["use-multilingual-v3", "multilingual-e5-small"],
        help="the gateway's semantic model",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(machine_header(f"response cache: semantic accuracy and hits ({args.model})"), flush=True)
    summary, by_kind, figures = accuracy(args.model)
    print()
    print(
        table(
            ["cache", "right hits", "wrong hits", "precision", "recall", "recall en", "recall zh"],
            summary,
        )
    )
    print()
    print(table(by_kind[0], by_kind[1:]))
    lookup = lookup_latency(args.model)
    print()
    print(table(["semantic lookup, in this process", "runs", "p50 ms", "p99 ms"], lookup))
    print()
    precision, recall = figures["new cache precision"], figures["new cache recall"]
    old_precision, old_recall = figures["today's cache precision"], figures["today's cache recall"]
    verdict = "met" if precision >= TARGET_PRECISION and recall >= TARGET_RECALL else "MISSED"
    print(
        f"target: precision >= {TARGET_PRECISION} with recall >= {TARGET_RECALL}: "
        f"{precision:.3f} / {recall:.3f} ({verdict}; today's cache "
        f"{old_precision:.3f} / {old_recall:.3f})"
    )
    p99 = float(cast(float, lookup[0][3]))
    verdict = "met" if p99 <= TARGET_LOOKUP_P99_MS else "MISSED"
    print(
        f"target: semantic lookup p99 <= {TARGET_LOOKUP_P99_MS:g} ms: {p99:.2f} ms in the stage "
        f"({verdict}; {load_average()})"
    )
    if args.accuracy_only:
        return
    print(machine_header(f"response cache: hits through thrifty serve ({args.model})"), flush=True)
    with tempfile.TemporaryDirectory(prefix="thrifty-bench-") as tmp, start_fake_upstream() as up:
        config = {
            "upstreams": [{"name": "fake", "base_url": up.url, "models": {MODEL: MODEL}}],
            "cache": {"semantic": True, "semantic_model": args.model},
        }
        with thrifty_serve(Path(tmp), "--no-local", config=config) as gateway:
            passes = asyncio.run(through_gateway(args, gateway.port, gateway.pid))
    headers = ["through the gateway", "requests", "p50 ms", "p99 ms", "req/s", "CPU ms/req"]
    headers.append("outcome")
    rows: list[list[object]] = []
    for name, p in passes.items():
        top = max(set(p.outcomes), key=p.outcomes.count)
        outcome = f"{p.share(top.split(';')[0]) * 100:.0f}% {top.split(';')[0]}"
        rows.append([name, len(p.latencies_s), p.p_ms(0.5), p.p_ms(0.99), p.rps, p.cpu_ms, outcome])
    print()
    print(table(headers, rows))
    texts = [json.loads(line)["b"] for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    parts = exact_lookup()
    parts += embedding_latency(["use-multilingual-v3", "multilingual-e5-small"], texts[:300])
    parts += vector_search()
    print()
    print(table(["parts, in this process", "runs", "p50 ms", "p99 ms"], parts))
    print()
    for name, target in (
        ("exact hit", TARGET_EXACT_P99_MS),
        ("semantic hit", TARGET_SEMANTIC_P99_MS),
    ):
        if name in passes:
            p99 = passes[name].p_ms(0.99)
            verdict = "met" if p99 <= target else "MISSED"
            print(f"target: {name} p99 <= {target:g} ms: {p99:.2f} ms ({verdict})")
    print(f"at end: {load_average()}")


if __name__ == "__main__":
    main()
