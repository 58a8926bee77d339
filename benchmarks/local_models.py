"""Several local models in one gateway: thrifty's engine pool against llama-server's router mode.

Both serve the two bundled models (SmolLM2 135M, Gemma 3 270M) from one endpoint, in one run:

- llama-server's router mode (`--models-dir` with both GGUFs, `--models-max 2`, autoload): one
  router process that starts a child llama-server per model and proxies requests to it;
- `thrifty serve` with smollm2-135m as the default model and gemma3-270m loaded on demand: one
  supervised llama-server per model, called directly by the gateway;
- a plain llama-server serving SmolLM2 alone: the floor for a request's latency.

Measured: the cold start (first request to a model that is not loaded: load + answer), the
latency of a one-token request to a loaded model, asking the same model again and again or
alternating between two loaded ones (SmolLM2 and a copy of it under another name, so that both
cost the same per answer: the difference is the cost of switching), and the engines' memory.
With --adapters DIR (GGUF LoRA adapters of SmolLM2, e.g. from `thrifty export --lora`): the
memory of one SmolLM2 engine with them against one engine per merged student, and generation
tok/s of an adapter request against a base request on the same engine.

    .venv/bin/python benchmarks/local_models.py                 # ~1-2 min on 2 cores
    .venv/bin/python benchmarks/local_models.py --adapters runs/adapters --requests 10
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _common import BIN, Server, free_port, load_average, machine_header, table, thrifty_serve
from thrifty.backends import reaper
from thrifty.backends.models import resolve_model

MODELS = ("smollm2-135m", "gemma3-270m")
COPY = "smollm2-copy"  # SmolLM2 again under another name: switching costs the same per answer


_NONCE = itertools.count()


def ask(client: httpx.Client, url: str, model: str, max_tokens: int = 1, **extra: Any) -> float:
    """Seconds for one non-streamed chat request (a new one: thrifty's cache never answers)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Say yes. (#{next(_NONCE)})"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }
    started = time.perf_counter()
    # a connection per request: llama-server's router drops a kept-alive one after an answer
    response = client.post(url + "/chat/completions", json=body, headers={"connection": "close"})
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return time.perf_counter() - started


def latencies(client: httpx.Client, url: str, models: list[str], n: int) -> float:
    """Median ms of n one-token requests, cycling through `models`."""
    return statistics.median(ask(client, url, models[i % len(models)]) for i in range(n)) * 1000


def _rss(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def measure(url: str, client: httpx.Client, n: int, cold: bool = True) -> dict[str, float]:
    result = {"cold smollm2-135m": float("nan")}
    if cold:
        result["cold smollm2-135m"] = ask(client, url, MODELS[0]) * 1000
    result["cold gemma3-270m"] = ask(client, url, MODELS[1]) * 1000
    ask(client, url, COPY)  # loaded: the switching figure compares two loaded engines
    result["same model"] = latencies(client, url, [MODELS[0]], n)
    result["alternating"] = latencies(client, url, [MODELS[0], COPY], n)
    return result


def router(home: Path, threads: int) -> Server:
    models = home / "router-models"
    models.mkdir(parents=True, exist_ok=True)
    for name, source in [(m, m) for m in MODELS] + [(COPY, MODELS[0])]:
        link = models / f"{name}.gguf"
        if not link.exists():
            link.symlink_to(resolve_model(source, home))
    port = free_port()
    command = [str(BIN / "llama-server"), "--models-dir", str(models), "--models-max", "3"]
    command += ["--host", "127.0.0.1", "--port", str(port), "-t", str(threads)]
    command += ["--parallel", "1", "-c", "1024", "--no-webui", "--jinja"]
    return Server(command, port, home / "logs" / "router.log", ready_path="/health")


def plain(home: Path, threads: int) -> Server:
    port = free_port()
    command = [str(BIN / "llama-server"), "-m", str(resolve_model(MODELS[0], home))]
    command += ["--host", "127.0.0.1", "--port", str(port), "-t", str(threads)]
    command += ["--parallel", "1", "-c", "1024", "--no-webui", "--jinja"]
    return Server(command, port, home / "logs" / "plain.log", ready_path="/health")


def adapters_run(home: Path, adapters: list[Path], args: argparse.Namespace) -> list[str]:
    """One SmolLM2 engine with the adapters, through thrifty: memory and tok/s."""
    from thrifty.backends.models import add_model

    names = []
    for i, path in enumerate(adapters):
        name = f"student-{i}"
        add_model(home, name, path, replace=True, adapter_of=MODELS[0])
        names.append(name)
    config = {"local": {"threads": args.threads, "parallel": 1, "ctx_size": 1024}}
    lines = []
    with httpx.Client(timeout=300, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        with thrifty_serve(home / "plain-home", config=config) as gateway:
            base_alone = sum(_rss(p) for p in _engine_pids(home / "plain-home"))
            base_tps = args.gen / min(
                ask(client, gateway.base_url, MODELS[0], args.gen, ignore_eos=True)
                for _ in range(3)
            )
        with thrifty_serve(home, config=config) as gateway:
            url = gateway.base_url
            ask(client, url, names[0])  # loads the engine with every adapter
            with_adapters = sum(_rss(p) for p in _engine_pids(home))
            best = {}
            for model in (MODELS[0], names[0]):
                ask(client, url, model, args.gen, ignore_eos=True)  # warm
                seconds = min(ask(client, url, model, args.gen, ignore_eos=True) for _ in range(3))
                best[model] = args.gen / seconds
    size = sum(p.stat().st_size for p in adapters) / 2**20
    lines.append(
        f"SmolLM2 engine alone: {base_alone:.0f} MB; with {len(adapters)} adapters "
        f"({size:.1f} MB of files): {with_adapters:.0f} MB "
        f"(bound: base + adapters + 10% = {(base_alone + size) * 1.1:.0f} MB); one engine per "
        f"merged student instead: about {base_alone * (1 + len(adapters)):.0f} MB"
    )
    lines.append(
        f"generation, {args.gen} tokens incl. prompt: base {best[MODELS[0]]:.1f} tok/s, "
        f"adapter {best[names[0]]:.1f} tok/s on the same engine "
        f"({best[names[0]] / best[MODELS[0]]:.2f}x); engine without adapters {base_tps:.1f} tok/s"
    )
    return lines


def _engine_pids(home: Path) -> list[int]:
    return [int(p.read_text().split()[0]) for p in reaper.run_dir(home).glob("engine-*.pid")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=8, help="warm requests per figure")
    parser.add_argument("--threads", type=int, default=1, help="threads per engine")
    parser.add_argument("--adapters", type=Path, help="a folder of GGUF LoRA adapters of SmolLM2")
    parser.add_argument("--gen", type=int, default=32, help="tokens for the tok/s figures")
    args = parser.parse_args()
    print(machine_header("local models: thrifty's engine pool vs llama-server router mode"))
    rows: list[list[object]] = []
    with (
        tempfile.TemporaryDirectory(prefix="thrifty-bench-") as tmp,
        httpx.Client(timeout=300) as client,
    ):
        home = Path(tmp)
        for name in MODELS:
            resolve_model(name, home)  # Gemma is assembled once, outside every timing
        print(f"router mode ({load_average()})", flush=True)
        with router(home, args.threads) as server:
            figures = measure(server.base_url, client, args.requests)
            memory = _rss(server.pid) + sum(_rss(c) for c in children(server.pid))
        rows.append(["llama-server router", *figures.values(), memory])
        print(f"thrifty ({load_average()})", flush=True)
        copy = str(resolve_model(MODELS[0], home))
        local = {"threads": args.threads, "parallel": 1, "ctx_size": 1024, "max_loaded": 3}
        config = {"local": {**local, "models": {COPY: copy}}}
        with thrifty_serve(home, config=config) as gateway:
            # the default model is loaded at start; gemma's first request is a cold start
            figures = measure(gateway.base_url, client, args.requests, cold=False)
            memory = sum(_rss(p) for p in _engine_pids(home))
        rows.append(["thrifty pool", *figures.values(), memory])
        with plain(home, args.threads) as server:
            ask(client, server.base_url, MODELS[0])
            same = latencies(client, server.base_url, [MODELS[0]], args.requests)
            rows.append(["llama-server, one model", None, None, same, None, _rss(server.pid)])
        extra = (
            adapters_run(home, sorted(args.adapters.glob("*.gguf")), args) if args.adapters else []
        )
    headers = ["server", *[f"{k} ms" for k in figures], "engines' RSS MB"]
    print()
    print(f"one-token requests, median of {args.requests}; {args.threads} thread(s) per engine")
    print(table(headers, rows))
    router_row, pool_row, plain_row = rows
    print()
    print(
        f"switching between two loaded models adds: router "
        f"{router_row[4] - router_row[3]:+.1f} ms, thrifty {pool_row[4] - pool_row[3]:+.1f} ms "
        f"per request (alternating - same)"
    )
    print(
        f"per-request overhead over a plain llama-server: router "
        f"{router_row[3] - plain_row[3]:+.1f} ms, thrifty {pool_row[3] - plain_row[3]:+.1f} ms"
    )
    for line in extra:
        print(line)
    print(f"at end: {load_average()}")


if __name__ == "__main__":
    main()
