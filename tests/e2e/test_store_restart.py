"""A real `thrifty serve` on PostgreSQL keeps answering, and logging, through a database restart.

Clients keep calling while the server's PostgreSQL is stopped (`pg_ctl stop -m fast`) and
started again. Every request a client got an answer for is in the request log exactly once, and
/metrics shows nothing dropped.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.upstream import start_upstream
from support import ThriftyServer, postgres_server, query
from thrifty.store.db import connect

CHAT = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}


def store_samples(server: ThriftyServer) -> dict[tuple[str, str], float]:
    """The store writers' series on /metrics: (name, writer) -> value."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return {
        (sample.name, sample.labels["writer"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("thrifty_store_")
        for sample in family.samples
    }


@pytest.mark.slow
def test_every_answered_request_is_logged_once_across_a_database_restart() -> None:
    with postgres_server() as pg, start_upstream() as upstream:
        with connect(pg.url) as admin:
            admin.execute("CREATE DATABASE gateway")
        url = f"{pg.url.rsplit('/', 1)[0]}/gateway"
        config = {
            "upstreams": [
                {"name": "fake", "base_url": upstream.url, "models": {"deepseek-chat": "fake"}}
            ],
            "store": {"flush_interval_s": 0.05},
        }
        env = {"THRIFTY_DATABASE_URL": url}
        answered: list[str] = []
        with (
            ThriftyServer("--no-local", config=config, env=env) as gateway,
            httpx.Client(base_url=gateway.base_url, timeout=30) as client,
            ThreadPoolExecutor(4) as pool,
        ):

            def call(_: int) -> str:
                response = client.post("/chat/completions", json=CHAT)
                assert response.status_code == 200, response.text
                return response.headers["x-thrifty-request-id"]

            answered += pool.map(call, range(40))
            pg.stop("fast")
            answered += pool.map(call, range(60))  # answered while the database is down
            waiting = store_samples(gateway)[("thrifty_store_buffered_rows", "request-log")]
            assert waiting > 0, "the rows should wait for the database"
            pg.start()
            answered += pool.map(call, range(40))
            deadline = time.monotonic() + 60
            while store_samples(gateway)[("thrifty_store_buffered_rows", "request-log")] > 0:
                assert time.monotonic() < deadline, gateway.log()
                time.sleep(0.1)
            samples = store_samples(gateway)
        assert samples[("thrifty_store_dropped_rows_total", "request-log")] == 0
        assert samples[("thrifty_store_dropped_rows_total", "audit-log")] == 0
        logged = [row["id"] for row in query(url, "SELECT id FROM requests")]
        assert len(logged) == len(set(logged)) == len(answered) == 140
        assert set(logged) == set(answered)
