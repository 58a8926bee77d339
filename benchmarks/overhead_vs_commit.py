"""thrifty's CPU per request against an earlier commit's, in the same run.

Both gateways run at once (the earlier one from a temporary git worktree of `--base`), in front of
the same fast fake upstream; passes alternate between them (which goes first alternates too), so
a noisy machine slows both alike. Prints each round, then the median CPU ms per request of each
and their ratio, for whole answers and for streams.

    .venv/bin/python benchmarks/overhead_vs_commit.py --base 4e01fd1           # 5 rounds
    .venv/bin/python benchmarks/overhead_vs_commit.py --base HEAD~3 -n 500 --rounds 3
    .venv/bin/python benchmarks/overhead_vs_commit.py --base a1b2c3 --this d4e5f6   # two commits
    .venv/bin/python benchmarks/overhead_vs_commit.py --base 38ec56b --traced   # + tracing on

`--traced` adds a third gateway, this tree with `telemetry.otlp_endpoint` set, exporting every
request's spans to an OTLP/HTTP sink in this process that only counts bytes (the gateway's
encoding and sending, on its exporter thread, is charged to the gateway).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import machine_header, start_fake_upstream, table, thrifty_serve
from gateway_overhead import MODEL, Target, run, run_pass

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached checkout of `rev`, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="thrifty-base-")) / "tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
            check=False,
            capture_output=True,
        )


@contextlib.contextmanager
def pythonpath(src: Path) -> Iterator[None]:
    """Servers started inside import thrifty from `src`."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


async def rounds(
    targets: dict[str, Target], args: argparse.Namespace
) -> dict[tuple[str, bool], list[float]]:
    nonces = itertools.count()
    for target in targets.values():  # warm-up: pools, lazy imports, SQLite
        for stream in (False, True):
            await run_pass(target, stream, 100, args.concurrency, nonces)
    cpu: dict[tuple[str, bool], list[float]] = {}
    names = list(targets)
    for n in range(args.rounds):
        for stream in (False, True):
            order = names if n % 2 == 0 else names[::-1]
            for name in order:
                result = await run_pass(
                    targets[name], stream, args.requests, args.concurrency, nonces
                )
                cpu.setdefault((name, stream), []).append(result.cpu_ms_per_request)
                mode = "stream" if stream else "whole"
                print(f"round {n + 1} {mode:6} {name:5} {result.cpu_ms_per_request:.3f} ms/req")
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", default="HEAD~1", help="the earlier commit (default HEAD~1)")
    parser.add_argument("--this", help="measure this commit instead of the working tree")
    parser.add_argument("--rounds", type=int, default=5, help="alternations (default 5)")
    parser.add_argument("-n", "--requests", type=int, default=1000, help="requests per pass")
    parser.add_argument("-c", "--concurrency", type=int, default=1, help="connections")
    parser.add_argument(
        "--traced", action="store_true", help="also this tree with tracing on (OTLP receiver)"
    )
    args = parser.parse_args()
    print(machine_header(f"gateway CPU per request: this tree against {args.base}"), flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="thrifty-bench-") as tmp,
        worktree(args.base) as base_tree,
        worktree(args.this) if args.this else contextlib.nullcontext(REPO) as this_tree,
        start_fake_upstream() as fake,
        otlp_receiver() if args.traced else contextlib.nullcontext() as receiver,
    ):
        config = {"upstreams": [{"name": "fake", "base_url": fake.url, "models": {MODEL: MODEL}}]}
        with contextlib.ExitStack() as stack:
            targets = {}
            trees = [("base", base_tree / "src", config), ("this", this_tree / "src", config)]
            if receiver is not None:
                traced = {**config, "telemetry": {"otlp_endpoint": receiver.url}}
                trees.append(("traced", this_tree / "src", traced))
            for name, src, settings in trees:
                with pythonpath(src):
                    server = stack.enter_context(
                        thrifty_serve(Path(tmp) / name, "--no-local", config=settings)
                    )
                targets[name] = Target(server.port, server.pid)
            cpu = run(lambda: rounds(targets, args))  # type: ignore[arg-type,return-value]
        if receiver is not None:
            kib = receiver.received_bytes / 1024
            print(f"OTLP receiver: {kib:.0f} KiB of spans in {receiver.requests} POSTs")
    rows = []
    for stream in (False, True):
        base = statistics.median(cpu[("base", stream)])
        this = statistics.median(cpu[("this", stream)])
        mode = "stream" if stream else "whole"
        row = [mode, base, this, f"{this / base:.3f}x"]
        if args.traced:
            traced_ms = statistics.median(cpu[("traced", stream)])
            row += [traced_ms, f"{traced_ms - this:+.3f}"]
        rows.append(row)
    headers = [
        "mode",
        f"{args.base} CPU ms/req (median)",
        f"{args.this or 'this tree'} CPU ms/req (median)",
        "this / base",
    ]
    if args.traced:
        headers += ["traced CPU ms/req (median)", "traced - this ms"]
    print(table(headers, rows))


@contextlib.contextmanager
def otlp_receiver() -> Iterator[Any]:
    """The tests' OTLP/HTTP receiver (opentelemetry-proto), on a free port of 127.0.0.1."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from fakes.otlp import OtlpReceiver

    # counting bytes only: decoding every span here would load the machine the gateways share
    with OtlpReceiver(decode=False) as receiver:
        yield receiver


if __name__ == "__main__":
    main()
