"""Embeddings per second: the local encoder through `thrifty serve` against the encoder itself.

Baseline: the same encoder (`embeddings.local_model`, default use-multilingual-v3) called
in-process, one thread, `embed_batch` on the same texts. thrifty: `POST /v1/embeddings` with
`model: local` on a `thrifty serve` with no chat model, one request at a time, batch 1 (one text
per request) and batch 32 (32 texts per request). Every text is different (a number in it), so
the response cache never answers. Each figure is the best of --rounds rounds (load from other
processes only ever slows a round down).

    .venv/bin/python benchmarks/embeddings.py                  # ~1 min on 2 cores
    .venv/bin/python benchmarks/embeddings.py --texts 256 --rounds 3
    .venv/bin/python benchmarks/embeddings.py --gguf           # a GGUF model on llama-server

With --gguf: all-MiniLM-L6-v2 from its PyPI wheel, converted to GGUF (f16) by llama.cpp's
converter, as a `local.models` entry with `embedding: true`; the baseline is a plain
llama-server started with exactly the flags thrifty gives it, called directly.
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


def gguf_minilm(root: Path) -> Path:
    """all-MiniLM-L6-v2 from its wheel as an f16 GGUF under `root`."""
    import zipfile

    import all_minilm_l6_v2

    from thrifty.train.export import convert, llama_cpp_source

    with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as zf:
        zf.extractall(root / "hf")
    out = root / "all-minilm-l6-v2-f16.gguf"
    convert(llama_cpp_source(), root / "hf", out, "f16")
    return out


def rates(
    http: httpx.Client, urls: dict[str, str], model: str, count: int, rounds: int
) -> list[list[str]]:
    """Best texts/s of each URL for batch 1 and 32, the first URL the baseline."""
    rows, offset = [], 1000
    for batch in (1, 32):
        best = dict.fromkeys(urls, 0.0)
        for round_ in range(rounds):
            offset += count
            chunks = [texts(batch, offset + i) for i in range(0, count, batch)]
            order = list(urls.items())
            for name, url in order if round_ % 2 == 0 else order[::-1]:  # neither always first
                started = time.perf_counter()
                for chunk in chunks:
                    http.post(url, json={"model": model, "input": chunk}).raise_for_status()
                best[name] = max(best[name], count / (time.perf_counter() - started))
        base, ours = best.values()
        rows.append([f"batch {batch}", f"{base:.0f}", f"{ours:.0f}", ratio(ours, base)])
    return rows


def main_gguf(count: int, rounds: int) -> None:
    from _common import Server, free_port
    from thrifty.backends import local_pool
    from thrifty.config import Settings

    print(machine_header(f"embeddings/s, all-MiniLM-L6-v2 GGUF, {count} texts per round"))
    home = Path(tempfile.mkdtemp(prefix="thrifty-bench-gguf-embed-"))
    entry = {"path": str(gguf_minilm(home)), "embedding": True, "pinned": True, "parallel": 2}
    local = {"parallel": 1, "threads": 1, "models": {"minilm": entry}}
    config = {"local": local, "embeddings": {"local_model": None}}
    pool = local_pool(Settings(home=home / "plain", **config))  # type: ignore[arg-type]
    engine = pool.factory(pool.specs["minilm"], home / "plain")
    engine.port = free_port()
    command = engine.command(engine.locate())  # exactly the flags thrifty gives llama-server
    with (
        thrifty_serve(home / "thrifty", config=config) as server,
        Server(command, engine.port, home / "llama.log", ready_path="/health") as plain,
        httpx.Client(timeout=120) as http,
    ):
        urls = {"plain": plain.base_url + "/embeddings", "thrifty": server.base_url + "/embeddings"}
        for url in urls.values():
            http.post(url, json={"model": "minilm", "input": "warm up"}).raise_for_status()
        rows = rates(http, urls, "minilm", count, rounds)
    print(table(["", "llama-server /s", "thrifty /v1/embeddings /s", "thrifty/plain"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=128, help="texts per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="use-multilingual-v3")
    parser.add_argument("--gguf", action="store_true", help="all-MiniLM GGUF on llama-server")
    args = parser.parse_args()
    if args.gguf:
        main_gguf(args.texts, args.rounds)
        return
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
