"""End to end: opt-in capture of cloud answers for distillation, and personal data never in it.

Real `thrifty serve` processes in front of the fake upstream (no local engine: capture is about
cloud answers), driven by the official `openai` client; then `thrifty distill collect --from-log`
reads what was captured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from fakes.upstream import FakeUpstream
from support import ThriftyServer, query

pytestmark = pytest.mark.slow

PHONE = "13812345678"
ID_CARD = "11010519491231002X"


def _config(fake: FakeUpstream, on_pii: str, tenants: list[str]) -> dict[str, Any]:
    return {
        "local": {"enabled": False},
        "privacy": {"on_pii": on_pii},
        "cache": {"enabled": False},
        "distill": {"capture_tenants": tenants},
        "store": {"flush_interval_s": 0.05},
        "upstreams": [
            {"name": "cloud", "base_url": fake.url, "models": {"cloud-chat": "fake-chat"}}
        ],
    }


@pytest.fixture(scope="module")
def masking(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    """Capture on for the default tenant; personal data masked before it leaves."""
    with ThriftyServer(config=_config(fake, "mask", ["default"])) as server:
        yield server


@pytest.fixture(scope="module")
def allowing(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    """Capture on for every tenant; personal data let through to the cloud unmasked."""
    with ThriftyServer(config=_config(fake, "allow", ["*"])) as server:
        yield server


@pytest.fixture(scope="module")
def off(fake: FakeUpstream) -> Iterator[ThriftyServer]:
    """Capture configured for another tenant only: this one's requests are never captured."""
    with ThriftyServer(config=_config(fake, "mask", ["acme"])) as server:
        yield server


def _samples(server: ThriftyServer) -> list[dict[str, Any]]:
    return query(server.database_url, "SELECT * FROM samples ORDER BY ts")


def _sample(server: ThriftyServer, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in _samples(server) if s["id"] == request_id]
        if found or time.monotonic() > deadline:
            assert found, f"no sample for {request_id}"
            return found[0]
        time.sleep(0.05)


def _ask(
    server: ThriftyServer, messages: list[dict[str, str]], stream: bool = False
) -> tuple[str, str]:
    """(answer the client got, request id)."""
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=60)
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model="cloud-chat",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
        ) as response:
            request_id = response.headers["x-thrifty-request-id"]
            chunks = list(response.parse())
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return answer, request_id
    raw = client.chat.completions.with_raw_response.create(
        model="cloud-chat",
        messages=messages,  # type: ignore[arg-type]
    )
    reply = raw.parse()
    return reply.choices[0].message.content or "", raw.headers["x-thrifty-request-id"]


def _flushed(server: ThriftyServer, request_id: str) -> None:
    """Wait until the request log has the request: the samples writer flushes on the same beat."""
    server.row(request_id)
    time.sleep(0.3)


@pytest.mark.parametrize("stream", [False, True])
def test_a_cloud_answer_is_captured_as_sent(masking: ThriftyServer, stream: bool) -> None:
    messages = [
        {"role": "system", "content": "You sort tickets."},
        {"role": "user", "content": f"echo:order_status ({'stream' if stream else 'whole'})"},
    ]
    answer, request_id = _ask(masking, messages, stream)
    assert answer.startswith("order_status")
    sample = _sample(masking, request_id)
    assert json.loads(sample["messages"]) == messages
    assert sample["answer"] == answer
    assert sample["route"] == "cloud-chat"
    assert sample["upstream_model"] == "fake-chat"
    assert sample["tenant"] == "default"
    assert (sample["pii"], sample["masked"]) == ("", 0)


@pytest.mark.parametrize("stream", [False, True])
def test_masked_personal_data_is_stored_as_the_cloud_saw_it(
    masking: ThriftyServer, stream: bool
) -> None:
    content = f"echo:请回拨 {PHONE}，身份证 {ID_CARD}（{'流式' if stream else '整体'}）"
    messages = [
        {"role": "system", "content": f"Customer phone on file: {PHONE}."},
        {"role": "user", "content": content},
    ]
    answer, request_id = _ask(masking, messages, stream)
    assert PHONE in answer and ID_CARD in answer  # the client gets its values back
    sample = _sample(masking, request_id)
    stored = sample["messages"] + sample["answer"]
    assert PHONE not in stored and ID_CARD not in stored
    assert "<PHONE_1>" in sample["answer"] and "<ID_CARD_1>" in sample["answer"]
    assert json.loads(sample["messages"])[0]["content"] == "Customer phone on file: <PHONE_1>."
    assert sample["masked"] == 1 and set(sample["pii"].split(",")) == {"phone", "id_card"}


def test_unmasked_personal_data_is_never_captured(allowing: ThriftyServer) -> None:
    _, pii_id = _ask(allowing, [{"role": "user", "content": f"echo:call me at {PHONE}"}])
    _, clean_id = _ask(allowing, [{"role": "user", "content": "echo:refund"}])
    _sample(allowing, clean_id)  # capture works on this server
    _flushed(allowing, pii_id)
    assert allowing.row(pii_id)["pii"] == "phone"
    stored = json.dumps(_samples(allowing), ensure_ascii=False)
    assert PHONE not in stored
    assert pii_id not in stored


def test_tenants_not_opted_in_are_not_captured(off: ThriftyServer) -> None:
    for stream in (False, True):
        _, request_id = _ask(off, [{"role": "user", "content": "echo:hello"}], stream)
        _flushed(off, request_id)
    assert _samples(off) == []


def test_collect_from_log_writes_training_data(masking: ThriftyServer, tmp_path: Path) -> None:
    _ask(masking, [{"role": "user", "content": f"echo:address change for {PHONE}"}])
    _, last = _ask(masking, [{"role": "user", "content": "echo:shipping_address"}])
    _sample(masking, last)
    out = tmp_path / "data.jsonl"
    args = ["--from-log", "--route", "cloud-chat", "--since", "1d", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "distill", "collect", *args],
        capture_output=True,
        text=True,
        env=masking.env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    assert {"role": "assistant", "content": "shipping_address"} in [r["messages"][-1] for r in rows]
    text = out.read_text(encoding="utf-8")
    assert PHONE not in text and "<PHONE_1>" in text
    assert "kept" in done.stdout


# -- the finisher's rules, without a server ------------------------------------------------------


def _capture(tmp_path: Path, tenants: list[str]) -> Any:
    from thrifty.config import Settings
    from thrifty.gateway.capture import build_capture
    from thrifty.gateway.pii import PIIDetector

    settings = Settings(home=tmp_path, distill={"capture_tenants": tenants})  # type: ignore[arg-type]
    return build_capture(settings, PIIDetector())


def _cloud_ctx(answer: str, **fields: Any) -> Any:
    from thrifty.backends import Target
    from thrifty.context import RequestContext

    target = Target("cloud-chat", object(), "fake-chat", upstream="cloud")  # type: ignore[arg-type]
    ctx = RequestContext("chat", {"messages": [{"role": "user", "content": "hi"}]}, "x", False)
    ctx.targets, ctx.answered_by = [target], target
    ctx.reply = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def test_capture_off_builds_nothing(tmp_path: Path) -> None:
    assert _capture(tmp_path, []) is None


def test_an_answer_showing_personal_data_is_dropped(tmp_path: Path) -> None:
    from thrifty.store.samples import read_samples

    capture = _capture(tmp_path, ["*"])
    capture.open()
    try:
        capture.on_finish(_cloud_ctx(f"Call us on {PHONE}."))
        capture.on_finish(_cloud_ctx("fine", status=502))
        capture.on_finish(_cloud_ctx("kept <PHONE_1>", pii=frozenset({"phone"})))  # not masked
        # ctx.reply is the answer as the cloud wrote it: for a masked request, with placeholders
        masked = _cloud_ctx("Restored <PHONE_1>", pii=frozenset({"phone"}))
        masked.pii_mapping = {"<PHONE_1>": PHONE}
        capture.on_finish(masked)
        capture.on_finish(_cloud_ctx("plain"))
        assert capture.log.flush()
    finally:
        capture.close()
    stored = [(s.answer, s.masked) for s in read_samples(capture.log.url)]
    assert sorted(stored) == [("Restored <PHONE_1>", True), ("plain", False)]
    assert capture.dropped_pii == 1
