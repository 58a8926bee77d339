"""`thrifty serve --workers N`: several processes on one port, one engine, shared state."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from fakes.upstream import start_upstream
from support import THRIFTY, ThriftyServer

pytestmark = pytest.mark.slow


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the direct children of `pid`, read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append((int(stat.parent.name), cmdline))
    return found


def workers_of(server: ThriftyServer) -> list[int]:
    assert server.proc is not None
    return [pid for pid, cmd in children(server.proc.pid) if "spawn_main" in cmd]


def requests_total(server: ThriftyServer) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r"^thrifty_requests_total\{.*\} (\S+)$", text, re.M))


def ask(server: ThriftyServer, model: str, text: str) -> str:
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=60)
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=4
    )
    return reply.choices[0].message.content or ""


def upstream_config(url: str, **extra: object) -> dict[str, object]:
    return {
        "upstreams": [{"name": "fake", "base_url": url, "models": {"deepseek-chat": "fake"}}],
        **extra,
    }


def test_workers_share_one_engine_one_log_and_one_metrics_view() -> None:
    with start_upstream() as upstream:
        config = upstream_config(upstream.url, local={"parallel": 2, "ctx_size": 512})
        with ThriftyServer("--workers", "2", config=config) as server:
            assert server.proc is not None
            engines = [p for p, cmd in children(server.proc.pid) if "llama-server" in cmd]
            assert len(engines) == 1, "the workers must share the parent's one llama-server"
            assert len(workers_of(server)) == 2

            jobs = [("local" if i % 4 == 0 else "deepseek-chat", f"echo:n{i}") for i in range(40)]
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda job: ask(server, *job), jobs))
            assert [a for (m, _), a in zip(jobs, answers, strict=True) if m != "local"] == [
                f"n{i}" for i in range(40) if i % 4
            ]
            # whichever worker answers the scrape, it counts every worker's requests
            assert {requests_total(server) for _ in range(6)} == {40.0}
        # a clean stop flushes every worker's log, and stops the engine with them
        assert len(server.rows()) == 40
        assert not [p for p, _ in children(server.proc.pid)]


def test_a_killed_worker_is_replaced_and_the_others_keep_serving() -> None:
    with (
        start_upstream() as upstream,
        ThriftyServer("--workers", "2", "--no-local", config=upstream_config(upstream.url)) as srv,
    ):
        victim, survivor = workers_of(srv)
        os.kill(victim, signal.SIGKILL)
        answers = [ask(srv, "deepseek-chat", f"echo:after{i}") for i in range(10)]
        assert answers == [f"after{i}" for i in range(10)]
        deadline = time.monotonic() + 30
        while len(workers_of(srv)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert survivor in workers_of(srv) and victim not in workers_of(srv)
        assert len(workers_of(srv)) == 2


def test_rate_limits_are_exact_across_workers_through_redis(redis_url: str) -> None:
    limits = {"default_tenant": {"rpm": 9}, "redis_url": redis_url, "redis_prefix": "workers"}
    with (
        start_upstream() as upstream,
        ThriftyServer(
            "--workers", "3", "--no-local", config=upstream_config(upstream.url, limits=limits)
        ) as server,
    ):

        def status(i: int) -> int:
            try:
                ask(server, "deepseek-chat", f"echo:{i}")
                return 200
            except openai.RateLimitError:
                return 429

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(status, range(24)))
        assert statuses.count(200) == 9 and statuses.count(429) == 15


def test_limits_without_redis_refuse_several_workers(tmp_path: Path) -> None:
    config = tmp_path / "thrifty.yaml"
    config.write_text("limits:\n  default_tenant:\n    rpm: 10\n")
    env = {**os.environ, "THRIFTY_HOME": str(tmp_path), "THRIFTY_CONFIG": str(config)}
    done = subprocess.run(
        [*THRIFTY, "serve", "--workers", "2", "--no-local"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "limits.redis_url" in done.stderr and "Traceback" not in done.stderr
