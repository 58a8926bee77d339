"""End to end: personal data reaches the cloud through no field, format, endpoint or side path.

A real `thrifty serve` sends to a recording fake cloud (every body and header of every model call);
its local engine is a second fake. The moderation self-check's judge is named on the cloud, capture
for distillation is on, traces go to an OTLP receiver and the log is JSON, so each side path that
could carry a request's text is exercised by every request. Under `privacy.on_pii: local`, `mask`
and `reject`, each vector below (every endpoint: chat, legacy completions, embeddings, Anthropic
messages, a batch) is answered or refused (`reject`) without leaving any value in anything the
cloud received, in any form: as written, NFKC-folded, with separators squeezed out, percent- or
entity-decoded, or base64-decoded (two layers). Streamed answers (OpenAI's and Anthropic's events)
bring the client its own values back, restored across events. The same holds for `auto` requests
whose local answer fails (a fallback to the cloud), fails a cascade's check (an escalation) or is
shadowed, with no pii-local rule: the privacy guard alone must hold. Nor may a value reach the
request log, the audit log, the captured samples, the traces or the log. Clean controls on each
endpoint and path must reach the cloud, so the recording is known to work.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from fakes.otlp import OtlpReceiver
from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer, dump

pytestmark = pytest.mark.slow

CLOUD, EMBEDDER = "deepseek-chat", "cloud-embedder"
PHONE = "13812345678"
ID = "110105199003071239"  # region, birth date and check character all valid
EMAIL = "li.na@example.com"
BANK = "6222021234567890128"  # UnionPay, Luhn-valid
NAME, ADDRESS = "张伟", "北京市海淀区中关村大街27号3单元502室"
ALL = [PHONE, ID, EMAIL, BANK, NAME, ADDRESS]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **extra}


def chat(*messages: dict[str, Any], **extra: Any) -> tuple[str, dict[str, Any]]:
    return "/chat/completions", {"model": CLOUD, "messages": list(messages), **extra}


def history(arguments: dict[str, Any], result: str) -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    call["function"]["arguments"] = json.dumps(arguments)  # ensure_ascii: \u escapes
    return [
        user("look it up"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
        user("thanks"),
    ]


def tool(description: str, param: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"who": {"type": "string", **param}}}
    return {
        "type": "function",
        "function": {"name": "lookup", "description": description, "parameters": schema},
    }


def anthropic(**body: Any) -> tuple[str, dict[str, Any]]:
    return "/messages", {"model": CLOUD, "max_tokens": 8, **body}


SCHEMA = {"type": "object", "description": f"the record of {EMAIL}"}
TOOL_USE = {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"phone": PHONE}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "t1"}

# name -> (path, body); every value of ALL the body holds must stay off the cloud
VECTORS: dict[str, tuple[str, dict[str, Any]]] = {
    "content string": chat(user(f"call me at {PHONE}")),
    "text parts": chat(user([{"type": "text", "text": "id:"}, {"type": "text", "text": ID}])),
    "split across parts": chat(
        user([{"type": "text", "text": "phone 1381"}, {"type": "text", "text": "2345678 ok"}])
    ),
    "split across messages": chat(user("my id is 110105199"), user("003071239, thanks")),
    "cut into three parts": chat(
        user([{"type": "text", "text": t} for t in ("值 138", "1234", "5678 好")])
    ),
    "image url query": chat(
        user([{"type": "image_url", "image_url": {"url": f"https://x.test/a.png?m={PHONE}"}}])
    ),
    "data url image": chat(
        user([{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(ID)}"}}])
    ),
    "input audio": chat(
        user([{"type": "input_audio", "input_audio": {"data": b64(PHONE), "format": "wav"}}])
    ),
    "message name": chat(user("hello", name=PHONE)),
    "system": chat({"role": "system", "content": f"The customer is {EMAIL}."}, user("hi")),
    "developer": chat({"role": "developer", "content": f"身份证号 {ID}"}, user("hi")),
    "tool-call arguments and result": chat(*history({"电话": PHONE}, f"卡号 {BANK}")),
    "tool description, enum, default": chat(
        user("hi"), tools=[tool(f"for {EMAIL}", {"enum": [PHONE], "default": ID})]
    ),
    "response_format schema": chat(
        user("json"),
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}},
    ),
    "metadata": chat(user("hi"), metadata={"customer": PHONE}),
    "numbers": chat(user("hi"), metadata={"phone": float(PHONE), "id": int(ID)}),
    "user": chat(user("hi"), user=EMAIL),
    "prediction": chat(user("hi"), prediction={"type": "content", "content": f"ID {ID}"}),
    "logit_bias key": chat(user("hi"), logit_bias={PHONE: 1}),
    "stop": chat(user("hi"), stop=[f"END {PHONE}"]),
    "chinese id, phone, card, name and address": chat(
        user(f"收件人：{NAME}，{ADDRESS}，手机{PHONE}，身份证{ID}，银行卡{BANK}")
    ),
    "full-width digits": chat(
        user("手机号 " + PHONE.translate({c: c + 0xFEE0 for c in range(48, 58)}))
    ),
    "other scripts' digits": chat(
        user("هاتف " + "".join(chr(0x0660 + int(c)) for c in PHONE)),  # Arabic-Indic
        user("id " + "".join(chr(0x1D7CE + int(c)) for c in ID[:-1]) + ID[-1]),  # 𝟏𝟏𝟎…
    ),
    "spaced and dashed": chat(user("phone 138 1234 5678, id 110105-19900307-1239")),
    "percent-encoded": chat(
        user(f"open https://crm.test/?e={quote(EMAIL)}&p=%31%33%38%31%32%33%34%35%36%37%38")
    ),
    "html entities": chat(user("tel " + "".join(f"&#{ord(c)};" for c in PHONE))),
    "base64": chat(user(f"decode {b64(f'my id is {ID}')} and {b64(PHONE)}")),
    "json-escaped": chat(user('{"\\u624b\\u673a\\u53f7": "' + PHONE + '"}')),
    "completions string": ("/completions", {"model": CLOUD, "prompt": f"phone {PHONE}"}),
    "completions list and suffix": (
        "/completions",
        {"model": CLOUD, "prompt": ["hi", f"mail {EMAIL}"], "suffix": f"id {ID}"},
    ),
    "completions token ids": (
        "/completions",
        {"model": CLOUD, "prompt": [ord(c) for c in f"phone {PHONE}"]},
    ),
    "embeddings string": ("/embeddings", {"model": EMBEDDER, "input": f"phone {PHONE}"}),
    "embeddings list": ("/embeddings", {"model": EMBEDDER, "input": ["hi", f"id {ID}"]}),
    "embeddings token ids": (
        "/embeddings",
        {"model": EMBEDDER, "input": [[ord(c) for c in f"mail {EMAIL}"]]},
    ),
    "anthropic system blocks": anthropic(
        system=[{"type": "text", "text": f"customer phone {PHONE}"}], messages=[user("hi")]
    ),
    "anthropic tool_use and tool_result": anthropic(
        messages=[
            user("look it up"),
            {"role": "assistant", "content": [TOOL_USE]},
            user([{**TOOL_RESULT, "content": [{"type": "text", "text": f"id {ID}"}]}]),
        ]
    ),
    "anthropic metadata": anthropic(metadata={"user_id": EMAIL}, messages=[user("hi")]),
    "a refused request's model name": ("/chat/completions", {"model": PHONE, "messages": 7}),
}
CONTROLS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": chat(user("control-chat: what is 2 + 2?")),
    "completions": ("/completions", {"model": CLOUD, "prompt": "control-completions: 2 + 2 ="}),
    "embeddings": ("/embeddings", {"model": EMBEDDER, "input": "control-embeddings"}),
    "anthropic": anthropic(messages=[user("control-anthropic: hello")]),
}


# --- what "in any form" means --------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\-./·_()]")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def _decoded(text: str, depth: int = 0) -> Iterator[str]:
    folded = unicodedata.normalize("NFKC", text)
    yield folded
    yield unquote(folded)
    yield html.unescape(folded)
    if depth < 2:
        for token in _BASE64.findall(folded):
            data = token.rstrip("=").replace("-", "+").replace("_", "/")
            try:
                raw = base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-8")
            except ValueError:
                continue
            yield from _decoded(raw, depth + 1)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield str(key)
            yield from _strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def leaked(received: Any, values: list[str] = ALL) -> list[str]:
    """The values found anywhere in `received`, in any of the forms above, its strings read one
    by one and all joined (a value cut into pieces that still arrive side by side)."""
    texts = list(_strings(received))
    forms = [form for text in [*texts, "".join(texts)] for form in _decoded(text)]
    squeezed = [_SEPARATORS.sub("", form) for form in forms]
    found = []
    for value in values:
        bare = _SEPARATORS.sub("", value)
        if any(value in form for form in forms) or any(bare in form for form in squeezed):
            found.append(value)
    return found


# --- the servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeUpstream, FakeUpstream, OtlpReceiver]]:
    with (
        start_upstream() as cloud,
        start_upstream(model_name="local") as local,
        OtlpReceiver() as receiver,
    ):
        yield cloud, local, receiver


def config(cloud: FakeUpstream, local: FakeUpstream, otlp: str, on_pii: str) -> dict[str, Any]:
    return {
        "local": {"url": local.root},
        "privacy": {"on_pii": on_pii},
        "moderation": {"self_check": {"enabled": True, "model": CLOUD}},
        "distill": {"capture_tenants": ["*"]},
        "telemetry": {"otlp_endpoint": otlp, "log_format": "json"},
        "batches": {"clock": "now", "poll_s": 0.1},
        # `auto`: a cascade that escalates to the cloud, a fallback to it, a shadow of every
        # request; no pii-local rule, so the privacy guard alone keeps the cloud out
        "router": {
            "cloud": CLOUD,
            "rules": [
                {
                    "name": "cascade",
                    "when": {"header": {"x-route": "cascade"}},
                    "target": {
                        "cascade": ["local", CLOUD],
                        "checks": ["labels"],
                        "labels": ["yes"],
                    },
                },
                {"name": "fallback", "target": ["local", CLOUD]},
            ],
            "shadow": {"sample": 1.0, "max_usd_per_day": 1.0},
        },
        "upstreams": [
            {
                "name": "cloud",
                "base_url": cloud.url,
                "models": {CLOUD: "fake-chat", EMBEDDER: "fake-embedder"},
                "max_retries": 0,
            }
        ],
    }


def stored_rows(database_url: str) -> list[str]:
    """Every row thrifty stored but the batch tables' (the client's input and output files,
    kept for it by design)."""
    rows, table = [], ""
    for line in dump(database_url).splitlines():
        if line.startswith("-- "):
            table = line[3:]
        elif not table.startswith(("files", "batch")):
            rows.append(line)
    return rows


def streamed_text(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[int, str]:
    """The status and text of a streamed answer: OpenAI's content deltas or Anthropic's text
    deltas."""
    text = []
    with client.stream("POST", path, json=body) as streamed:
        status = streamed.status_code
        for line in streamed.iter_lines():
            if not (line.startswith("data:") and line[5:].strip().startswith("{")):
                continue
            event = json.loads(line[5:])
            for choice in event.get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
            text.append((event.get("delta") or {}).get("text") or "")
    return status, "".join(text)


def received(cloud: FakeUpstream) -> dict[str, Any]:
    stats = cloud.stats()
    return {"bodies": stats["bodies"], "headers": stats["headers"]}


@pytest.mark.parametrize("on_pii", ["local", "mask", "reject"])
def test_no_vector_reaches_the_cloud(
    fakes: tuple[FakeUpstream, FakeUpstream, OtlpReceiver], on_pii: str
) -> None:
    cloud, local, receiver = fakes
    with (
        ThriftyServer(config=config(cloud, local, receiver.url, on_pii)) as thrifty,
        httpx.Client(base_url=thrifty.base_url, timeout=60) as client,
    ):
        for name, (path, body) in CONTROLS.items():
            cloud.reset()
            response = client.post(path, json=body)
            assert response.status_code == 200, (name, response.text)
            assert f"control-{name}" in json.dumps(received(cloud)), name

        statuses, leaks = {}, {}
        for name, (path, body) in VECTORS.items():
            cloud.reset()
            # a header the client sends is never forwarded (upstream headers are configured)
            response = client.post(path, json=body, headers={"x-customer": PHONE})
            statuses[name] = response.status_code
            found = leaked(received(cloud))
            if found:
                leaks[name] = found
        assert leaks == {}
        # kept local, masked or refused with a clear 4xx (the local fake takes no images and
        # no token ids): never a 500
        assert all(status != 500 for status in statuses.values()), statuses
        if on_pii == "reject":
            assert set(statuses.values()) <= {400, 403}, statuses

        # streamed, OpenAI's and Anthropic's way: the cloud sees no value, the client gets its own
        # back (the fakes answer "echo:TEXT" with TEXT, a few characters an event)
        cloud.reset()
        said = {
            "/chat/completions": {"model": CLOUD, "stream": True,
                                  "messages": [user(f"echo:call me at {PHONE}")]},
            "/messages": {"model": CLOUD, "stream": True, "max_tokens": 64,
                          "messages": [user(f"echo:my id is {ID}")]},
        }  # fmt: skip
        heard = {path: streamed_text(client, path, body) for path, body in said.items()}
        if on_pii == "reject":  # refused before a byte is streamed
            assert heard == {path: (403, "") for path in said}
        else:
            assert heard == {
                "/chat/completions": (200, f"call me at {PHONE}"),
                "/messages": (200, f"my id is {ID}"),
            }
        assert leaked(received(cloud)) == []

        # a local failure falls back to the cloud, a failed check escalates to it, and every
        # `auto` request is shadowed on the other target: with the values, the cloud sees none
        cloud.reset()
        asked = {"model": "auto", "messages": [user(f"my phone is {PHONE}")]}
        clean = {"model": "auto", "messages": [user("control-route: hello")]}
        local.set_mode("http500")
        fallback = [client.post("/chat/completions", json=body) for body in (asked, clean)]
        local.set_mode("ok")
        cascade = [
            client.post("/chat/completions", json=body, headers={"x-route": "cascade"})
            for body in (asked, clean)
        ]
        time.sleep(1.0)  # shadows run after the answer
        assert [r.status_code for r in fallback[1:] + cascade[1:]] == [200, 200]
        assert fallback[1].headers["x-thrifty-route"] == CLOUD  # the clean one did fall back
        assert "cascade: local failed labels" in cascade[1].headers["x-thrifty-reason"]
        assert "control-route" in json.dumps(received(cloud))
        assert leaked(received(cloud)) == []
        if on_pii == "local":
            assert fallback[0].status_code == 502  # local failed; the cloud was not an option
            assert cascade[0].headers["x-thrifty-route"] == "local"

        # a batch: its lines go through the same gateway
        cloud.reset()
        lines = [
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": CLOUD, "messages": [user(f"echo:call {PHONE}")]}},
            {"custom_id": "b", "method": "POST", "url": "/v1/embeddings",
             "body": {"model": EMBEDDER, "input": f"id {ID}"}},
        ]  # fmt: skip
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        files = {"file": ("batch.jsonl", io.BytesIO(data), "application/jsonl")}
        upload = client.post("/files", files=files, data={"purpose": "batch"})
        assert upload.status_code == 200, upload.text
        batch = client.post(
            "/batches",
            json={
                "input_file_id": upload.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ).json()
        deadline = time.monotonic() + 60
        while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            assert time.monotonic() < deadline, batch
            time.sleep(0.2)
            batch = client.get(f"/batches/{batch['id']}").json()
        assert batch["status"] == "completed", batch
        if on_pii == "reject":
            errors = client.get(f"/files/{batch['error_file_id']}/content").text
            assert "personal data" in errors and PHONE not in errors
        else:
            output = client.get(f"/files/{batch['output_file_id']}/content").text
            assert f"call {PHONE}" in output  # the client gets its own value back
        assert leaked(received(cloud)) == []

        time.sleep(1.5)  # the writers' and the exporter's batches
        # what thrifty keeps: request and audit logs, captured samples (batch input and output
        # files are the client's own data, kept for it by design)
        stored, log = stored_rows(thrifty.database_url), thrifty.log_path.read_text("utf-8")
        spans = [span for span in receiver.spans if span["name"].startswith("chat")]
        assert len(stored) > len(VECTORS) and spans and '"request_id"' in log  # all were written
        assert leaked(stored) == []
        assert leaked(receiver.spans) == []
        assert leaked(log) == []  # the whole JSON log
