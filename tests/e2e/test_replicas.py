"""Two gateway replicas on one Redis and one database, under `thrifty bench` load for 60 s.

Phase 1 (30 s): both replicas serve one key with an rpm limit and a daily budget; exactly the
limit is admitted, the rest is 429, every request is logged once, and the budget charged in
Redis is the cost in the log to the nano-dollar. Phase 2 (30 s): a second key loads replica B
while replica A is killed with SIGKILL mid-load; B never fails a request, and every request A
had answered is in the log once A's home is started again (its spool is replayed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from fakes.upstream import start_upstream
from support import THRIFTY, ThriftyServer, database_url, query

pytestmark = pytest.mark.slow

RPM = 150
BODY = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def create_key(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*THRIFTY, "keys", "create", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(done.stdout))


def bench(server: ThriftyServer, key: str, seconds: int) -> subprocess.Popen[str]:
    command = [*THRIFTY, "bench", "--url", server.base_url, "--api-key", key]
    command += ["-m", "deepseek-chat", "--max-tokens", "8", "--concurrency", "4"]
    command += ["--duration", f"{seconds}s", "--format", "json"]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        text=True,
    )


def summary(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=180)
    return dict(json.loads(out))


def test_two_replicas_share_limits_and_log_and_survive_a_kill(
    redis_url: str, tmp_path: Path
) -> None:
    db = database_url(tmp_path)  # SQLite file both replicas open, or the test's PostgreSQL db
    env = {"THRIFTY_DATABASE_URL": db}
    cli_env = {**os.environ, **env, "THRIFTY_HOME": str(tmp_path)}
    limited = create_key(cli_env, "--tenant", "acme", "--rpm", str(RPM), "--daily-usd", "5")
    free = create_key(cli_env, "--tenant", "beta")

    with start_upstream() as upstream:
        config = {
            "upstreams": [
                {"name": "fake", "base_url": upstream.url, "models": {"deepseek-chat": "fake"}}
            ],
            "limits": {"redis_url": redis_url, "redis_prefix": "replicas"},
            # rows wait up to 2 s before they are written: a kill then has rows to lose
            "store": {"flush_interval_s": 2.0},
        }
        a = ThriftyServer("--no-local", config=config, env=env, home=tmp_path / "a").start()
        b = ThriftyServer("--no-local", config=config, env=env, home=tmp_path / "b").start()
        try:
            # -- phase 1: one limited key on both replicas ---------------------------------------
            loads = [bench(a, limited["secret"], 30), bench(b, limited["secret"], 30)]
            first = [summary(p) for p in loads]
            assert sum(s["ok"] for s in first) == RPM  # exact across two processes
            assert all(set(s["errors"]) <= {"429"} for s in first), first
            sent_limited = sum(s["requests"] for s in first)

            # -- phase 2: kill -9 replica A while B is under load -----------------------------
            load_b = bench(b, free["secret"], 30)
            acked: list[str] = []
            stop = threading.Event()

            def hammer_a() -> None:
                with httpx.Client(base_url=a.base_url, timeout=10) as client:
                    headers = {"authorization": f"Bearer {free['secret']}"}
                    while not stop.is_set():
                        try:
                            r = client.post("/chat/completions", json=BODY, headers=headers)
                        except httpx.HTTPError:
                            return  # A is gone
                        if r.status_code == 200:
                            acked.append(r.headers["x-thrifty-request-id"])

            with ThreadPoolExecutor(2) as pool:
                for _ in range(2):
                    pool.submit(hammer_a)
                time.sleep(8)
                assert a.proc is not None
                a.proc.send_signal(signal.SIGKILL)
                a.proc.wait(timeout=10)
                time.sleep(1)
                stop.set()
            during_b = summary(load_b)
            assert during_b["errors"] == {} and during_b["ok"] > 0  # B never noticed
        finally:
            a.stop()
            b.stop()  # a clean stop: B writes everything it holds

        logged = _ids(db, free["id"])
        lost = [i for i in acked if i not in logged]
        assert acked and lost, "the kill should have caught A with rows not yet written"

        # A's home started again: its spool holds what it had answered
        with ThriftyServer("--no-local", config=config, env=env, home=tmp_path / "a"):
            pass
    logged = _ids(db, free["id"])
    assert set(acked) <= logged
    assert len(logged) >= during_b["ok"] + len(acked)

    rows = query(
        db,
        "SELECT status, prompt_tokens, completion_tokens, cost_nanos FROM requests"
        " WHERE key_id = ?",
        (limited["id"],),
    )
    assert len(rows) == sent_limited  # every request of phase 1 once, 429s included
    assert sum(r["status"] == 200 for r in rows) == RPM
    charged = _budget(redis_url, f"replicas:key:{limited['id']}")
    assert charged["usd"] == sum(r["cost_nanos"] or 0 for r in rows if r["status"] == 200)
    assert charged["tok"] == sum(
        r["prompt_tokens"] + r["completion_tokens"] for r in rows if r["status"] == 200
    )


def _ids(db: str, key_id: str) -> set[str]:
    return {r["id"] for r in query(db, "SELECT id FROM requests WHERE key_id = ?", (key_id,))}


def _budget(url: str, subject: str) -> dict[str, int]:
    """Today's used tokens and nano-USD of a subject, as the Redis limiter keeps them."""
    client = redis.Redis.from_url(url)
    try:
        [day_key] = client.keys(f"{subject}:d:*")
        values = client.hgetall(day_key)
        return {k.decode(): int(float(v)) for k, v in values.items()}
    finally:
        client.close()
