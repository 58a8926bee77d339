"""Embeddings per second: the local encoder through `thrifty serve` against the encoder itself.

Baseline: the same encoder (`embeddings.local_model`, default use-multilingual-v3) called
in-process, one thread, `embed_batch` on the same texts. thrifty: `POST /v1/embeddings` with
`model: local` on a `thrifty serve` with no chat model, one request at a time, batch 1 (one text
per request) and batch 32 (32 texts per request). Every text is different (a number in it), so
the response cache never answers. Each figure is the best of --rounds rounds (load from other
processes only ever slows a round down).

    .venv/bin/python benchmarks/embeddings.py                  # ~1 min on 2 cores
    .venv/bin/python benchmarks/embeddings.py --texts 256 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from _common import machine_header, ratio, table, thrifty_serve

SENTENCES = [
    "Where is my order {n}? It was supposed to arrive yesterday.",
    "我的订单 {n} 什么时候发货？",
    "Please reset the password of account {n}.",
    "发票 {n} 的金额不对，请帮我重新开一张。",
    "Can I return item {n} if I opened the box?",
    "请问 {n} 号门店周末几点开门？",
]


def texts(count: int, offset: int) -> list[str]:
    return [SENTENCES[i % len(SENTENCES)].format(n=offset + i) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=128, help="texts per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="use-multilingual-v3")
    args = parser.parse_args()
    print(machine_header(f"embeddings/s, {args.model}, {args.texts} texts per round"))
    from thrifty.encoders import load_embedder

    encoder = load_embedder(args.model, 1)
    encoder.embed_batch(texts(4, 0))  # weights loaded before timing
    home = Path(tempfile.mkdtemp(prefix="thrifty-bench-embed-"))
    config = {"local": {"enabled": False}, "embeddings": {"local_model": args.model}}
    rows = []
    offset = 1000
    with thrifty_serve(home, config=config) as server, httpx.Client(timeout=120) as http:
        url = server.base_url + "/embeddings"
        http.post(url, json={"model": "local", "input": "warm up"}).raise_for_status()
        for batch in (1, 32):
            best_direct = best_thrifty = 0.0
            for _ in range(args.rounds):
                offset += args.texts
                chunks = [
                    texts(batch, offset + i) for i in range(0, args.texts, batch)
                ]  # same texts for both
                started = time.perf_counter()
                for chunk in chunks:
                    encoder.embed_batch(chunk)
                best_direct = max(best_direct, args.texts / (time.perf_counter() - started))
                started = time.perf_counter()
                for chunk in chunks:
                    http.post(url, json={"model": "local", "input": chunk}).raise_for_status()
                best_thrifty = max(best_thrifty, args.texts / (time.perf_counter() - started))
            rows.append(
                [f"batch {batch}", f"{best_direct:.0f}", f"{best_thrifty:.0f}",
                 ratio(best_thrifty, best_direct)]
            )  # fmt: skip
    print(
        table(["", "encoder in-process /s", "thrifty /v1/embeddings /s", "thrifty/encoder"], rows)
    )


if __name__ == "__main__":
    main()
