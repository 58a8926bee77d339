"""End to end: a cloud that dies, and a local engine under more load than it takes."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from support import ThriftyServer

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello."}]


def test_stopped_upstream_gives_openai_shaped_5xx_in_time() -> None:
    with ThriftyServer("-m", "smollm2-135m", "--alias", "deepseek-chat") as cloud:
        config = {
            "local": {"enabled": False},
            "upstreams": [
                {
                    "name": "deepseek",
                    "base_url": cloud.base_url,
                    "models": {"deepseek-chat": "deepseek-chat"},
                    "connect_timeout_s": 2,
                    "timeout_s": 5,
                    "max_retries": 1,
                }
            ],
        }
        with ThriftyServer(config=config) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
            ok = client.chat.completions.create(model="deepseek-chat", messages=HELLO, max_tokens=8)
            assert ok.choices[0].message.content is not None
            cloud.stop()
            for stream in (False, True):
                started = time.monotonic()
                response = httpx.post(
                    gw.base_url + "/chat/completions",
                    json={"model": "deepseek-chat", "messages": HELLO, "stream": stream},
                    timeout=30,
                )
                assert time.monotonic() - started < 10
                assert response.status_code in (502, 503, 504)
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}
                assert error["code"].startswith("upstream")
                row = gw.row(response.headers["x-thrifty-request-id"])
                assert row["status"] == response.status_code
                assert row["error_code"] == error["code"]


async def _ask(client: openai.AsyncOpenAI) -> int:
    try:
        await client.chat.completions.create(model="local", messages=HELLO, max_tokens=24)
        return 200
    except openai.APIStatusError as exc:
        assert exc.code == "engine_overloaded", exc.body
        return exc.status_code


def test_sixteen_concurrent_clients_are_answered_or_cleanly_refused() -> None:
    config = {"local": {"parallel": 2, "max_queue": 4, "ctx_size": 512}}
    with ThriftyServer(config=config) as server:
        client = openai.AsyncOpenAI(
            base_url=server.base_url, api_key="x", max_retries=0, timeout=120
        )

        async def run() -> list[int]:
            return await asyncio.wait_for(
                asyncio.gather(*(_ask(client) for _ in range(16))), timeout=180
            )

        statuses = asyncio.run(run())
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(200) >= 6  # 2 slots + 4 queued were admitted
        assert 503 in statuses  # and the rest were refused, not left hanging
        assert httpx.get(server.url + "/readyz").status_code == 200
        refused = server.wait_rows("status = 503")
        assert refused and all(r["error_code"] == "engine_overloaded" for r in refused)
        deadline = time.monotonic() + 10  # the log's writer lands rows in batches
        while len(server.rows()) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.rows()) >= 16
