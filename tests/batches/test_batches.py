"""The Batch API end to end: the official openai SDK against a real thrifty and a fake cloud."""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer


def config(fake: FakeUpstream, **batches: Any) -> dict[str, Any]:
    return {
        "local": {"enabled": False},
        "upstreams": [
            {"name": "cloud", "base_url": fake.url, "models": {"deepseek-chat": "deepseek-chat"},
             "max_retries": 0}
        ],
        "batches": {"clock": "now", "poll_s": 0.1, **batches},
    }  # fmt: skip


def jsonl(lines: list[dict[str, Any]]) -> io.BytesIO:
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    return io.BytesIO(data)


def chat_line(i: int, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": f"req-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "deepseek-chat", "messages": [{"role": "user", "content": f"echo:{i}"}],
                 **body},
    }  # fmt: skip


@pytest.fixture()
def server(fake: FakeUpstream, tmp_path: Path) -> Iterator[ThriftyServer]:
    fake.set_mode("ok")
    with ThriftyServer(config=config(fake), home=tmp_path / "home") as srv:
        yield srv


def sdk(server: ThriftyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)


def wait_final(client: openai.OpenAI, batch_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}"
        time.sleep(0.2)


def output_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_upload_refuses_invalid_lines_naming_them(server: ThriftyServer) -> None:
    client = sdk(server)
    bad = [chat_line(1), chat_line(1), {"custom_id": "x", "method": "GET", "url": "/v1/nope"}]
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("bad.jsonl", jsonl(bad)), purpose="batch")
    message = str(err.value)
    assert "line 2" in message and "used twice" in message and "line 3" in message
    text = io.BytesIO(b'{"custom_id": "a"}\nnot json\n')
    with pytest.raises(openai.BadRequestError, match="line 2: not valid JSON"):
        client.files.create(file=("bad.jsonl", text), purpose="batch")


def test_batch_of_200_completes_with_each_custom_id_once_and_a_cost_report(
    server: ThriftyServer,
) -> None:
    client = sdk(server)
    lines = [chat_line(i) for i in range(198)]
    lines.append(chat_line(198, max_tokens=0))  # invalid: goes to the error file
    lines.append(chat_line(199, model="no-such-model"))  # fails when it runs: error file too
    uploaded = client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "in_progress" and batch.request_counts.total == 200
    done = wait_final(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts.completed == 198 and done.request_counts.failed == 2
    out = output_lines(client, done.output_file_id)
    assert sorted(o["custom_id"] for o in out) == sorted(f"req-{i}" for i in range(198))
    for o in out:
        body = o["response"]["body"]
        assert o["response"]["status_code"] == 200
        assert body["choices"][0]["message"]["content"] == o["custom_id"].removeprefix("req-")
    errors = {e["custom_id"]: e for e in output_lines(client, done.error_file_id)}
    assert set(errors) == {"req-198", "req-199"}
    assert errors["req-198"]["error"]["line"] == 199 and errors["req-198"]["response"] is None
    assert errors["req-199"]["response"]["status_code"] == 404
    report = client.batches.retrieve(batch.id).model_extra["x_thrifty"]  # type: ignore[index]
    assert float(report["cost_usd"]) > 0 and float(report["baseline_usd"]) > 0
    assert report["window"].startswith("now")
    # every line went through the gateway: one request-log row each, the batch key's tenant
    rows = server.wait_rows("model = ?", ("deepseek-chat",), timeout=10)
    deadline = time.monotonic() + 10
    while len(rows) < 198 and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = server.rows("model = ?", ("deepseek-chat",))
    assert len(rows) == 198
    listed = client.batches.list(limit=5)
    assert [b.id for b in listed.data] == [batch.id]


def test_cancel_stops_a_batch(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.set_mode("slow", delay_s=0.3)
    with ThriftyServer(config=config(fake, concurrency=1), home=tmp_path / "h") as srv:
        client = sdk(srv)
        uploaded = client.files.create(
            file=("in.jsonl", jsonl([chat_line(i) for i in range(50)])), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        time.sleep(1.0)
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status in ("cancelling", "cancelled")
        done = wait_final(client, batch.id)
        assert done.status == "cancelled"
        ran = output_lines(client, done.output_file_id)
        assert 0 < len(ran) < 50
    fake.set_mode("ok")


def test_killed_server_resumes_and_runs_each_line_once(fake: FakeUpstream, tmp_path: Path) -> None:
    home = tmp_path / "home"
    fake.set_mode("slow", delay_s=0.05)
    fake.reset()
    cfg = config(fake, concurrency=2, lease_s=1.0)
    first = ThriftyServer(config=cfg, home=home).start()
    client = sdk(first)
    uploaded = client.files.create(
        file=("in.jsonl", jsonl([chat_line(i) for i in range(60)])), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 60
    while client.batches.retrieve(batch.id).request_counts.completed < 10:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.stop(signal.SIGKILL)
    second = ThriftyServer(config=cfg, home=home).start()
    try:
        client = sdk(second)
        done = wait_final(client, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 60
        out = output_lines(client, done.output_file_id)
        ids = [o["custom_id"] for o in out]
        assert sorted(ids) == sorted(f"req-{i}" for i in range(60))  # each exactly once
        # the fake cloud saw at most the in-flight lines twice, never a finished line again
        assert 60 <= fake.stats()["requests"] <= 60 + 2
    finally:
        second.stop()
        fake.set_mode("ok")


def test_a_cloud_batch_waits_for_the_cheapest_window(fake: FakeUpstream, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    soon = datetime.now(UTC) + timedelta(hours=2)
    start = soon.replace(minute=(soon.minute // 15) * 15, second=0, microsecond=0)
    end = start + timedelta(hours=1)
    cheap = {"name": "off-peak", "start": f"{start:%H:%M}", "end": f"{end:%H:%M}",
             "input_cache_hit": 0.01, "input_cache_miss": 0.05, "output": 0.1}  # fmt: skip
    prices = {
        "deepseek-chat": [
            {"effective_from": "2020-01-01", "currency": "USD", "input_cache_hit": 0.07,
             "input_cache_miss": 0.27, "output": 1.1, "windows": [cheap]}
        ]
    }  # fmt: skip
    fake.set_mode("ok")
    fake.reset()
    cfg = {**config(fake), "batches": {"clock": "window", "poll_s": 0.1}, "prices": prices}
    with ThriftyServer(config=cfg, home=tmp_path / "h") as srv:
        client = sdk(srv)
        uploaded = client.files.create(
            file=("in.jsonl", jsonl([chat_line(i) for i in range(3)])), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        report = batch.model_extra["x_thrifty"]  # type: ignore[index]
        assert report["window"] == f"off-peak from {start:%Y-%m-%d %H:%M} UTC (deepseek-chat)"
        assert report["not_before"] == int(start.timestamp())
        time.sleep(0.5)  # a few runner polls: none may start the batch before its window
        assert client.batches.retrieve(batch.id).request_counts.completed == 0  # type: ignore[union-attr]
        assert fake.stats()["requests"] == 0
