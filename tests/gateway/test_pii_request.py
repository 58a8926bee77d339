"""The whole request is scanned, masked and restored (thrifty.gateway.pii_request, privacy)."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from thrifty.backends import Registry, Target
from thrifty.config import PrivacySettings
from thrifty.context import RequestContext
from thrifty.errors import RouteRejected
from thrifty.gateway.pii import PIIDetector, unmask
from thrifty.gateway.pii_request import (
    SCAN_FAILED,
    UNSCANNABLE,
    StreamRestorer,
    is_unscannable,
    iter_leaves,
    mask_request,
    scan_request,
    unmask_tree,
)
from thrifty.gateway.privacy import PIIScan, PrivacyGuard, scan_kinds

ID = "110105199003071239"
PHONE = "13812345678"
EMAIL = "li.na@example.com"


@pytest.fixture(scope="module")
def detector() -> PIIDetector:
    return PIIDetector()


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}], **extra}


def tool(description: str = "look up", param: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"q": param or {"type": "string"}}}
    return {
        "type": "function",
        "function": {"name": "lookup", "description": description, "parameters": schema},
    }


FIELDS = {
    "user": chat(user=ID),
    "metadata": chat(metadata={"customer": f"phone {PHONE}"}),
    "metadata number": chat(metadata={"n": int(PHONE)}),
    "tool description": chat(tools=[tool(f"the caller's email is {EMAIL}")]),
    "parameter description": chat(tools=[tool(param={"type": "string", "description": ID})]),
    "parameter default": chat(tools=[tool(param={"type": "string", "default": PHONE})]),
    "json schema example": chat(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object", "examples": [{"id": ID}]}},
        }
    ),
    "message name": {"model": "m", "messages": [{"role": "user", "name": PHONE, "content": "x"}]},
    "refusal part": {
        "model": "m",
        "messages": [
            {"role": "assistant", "content": [{"type": "refusal", "refusal": f"not {EMAIL}"}]}
        ],
    },
    "tool-call arguments": {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": json.dumps({"phone": PHONE})},
                    }
                ],
            }
        ],
    },
    "escaped arguments": {
        "model": "m",
        "messages": [
            {"role": "tool", "tool_call_id": "c1", "content": '{"a": "号\\u53f713812345678"}'}
        ],
    },
    "dictionary key": chat(metadata={PHONE: "x"}),
    "stop sequence": chat(stop=[f"ID {ID}"]),
}


@pytest.mark.parametrize("field", list(FIELDS))
def test_every_field_is_scanned(detector: PIIDetector, field: str) -> None:
    assert scan_request(detector, FIELDS[field]).kinds, field


def test_a_value_split_over_two_messages_is_found_and_masked(detector: PIIDetector) -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": f"my ID is {ID[:9]}"},
            {"role": "user", "content": f"{ID[9:]} thanks"},
        ],
    }
    assert "id_card" in scan_request(detector, body).kinds
    masked, mapping = mask_request(detector, body)
    sent = json.dumps(masked)
    assert ID[:9] not in sent and ID[9:] not in sent
    assert scan_request(detector, masked).kinds == set()
    assert [unmask(m["content"], mapping) for m in masked["messages"]] == [
        m["content"] for m in body["messages"]
    ]


def test_clean_requests_with_every_field_are_clean(detector: PIIDetector) -> None:
    body = chat(
        user="user-42",
        metadata={"team": "support", "ticket": "A-1024"},
        tools=[tool("look up an order by its number", {"type": "string", "enum": ["a", "b"]})],
        response_format={"type": "json_object"},
        max_tokens=256,
        temperature=0.7,
    )
    assert scan_request(detector, body).kinds == set()


def test_mask_rewrites_free_text_and_keeps_identifiers(detector: PIIDetector) -> None:
    body = chat(
        user=f"mail {EMAIL}",
        metadata={"note": f"call {PHONE}"},
        tools=[tool(f"for {EMAIL}", {"type": "string", "default": ID})],
    )
    original = copy.deepcopy(body)
    masked, mapping = mask_request(detector, body)
    assert body == original  # the input is untouched
    sent = json.dumps(masked, ensure_ascii=False)
    assert EMAIL not in sent and PHONE not in sent and ID not in sent
    assert masked["model"] == "deepseek-chat"
    assert masked["tools"][0]["function"]["name"] == "lookup"
    assert unmask_tree(copy.deepcopy(masked), mapping) == original


@pytest.mark.parametrize(
    "body",
    [
        chat(tools=[tool(param={"type": "string", "enum": [PHONE, "other"]})]),
        chat(metadata={PHONE: "key"}),
        chat(metadata={"n": int(PHONE)}),
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": f"call_{PHONE}"}}],
        },
    ],
)
def test_personal_data_in_verbatim_fields_is_left_and_found_again(
    detector: PIIDetector, body: dict[str, Any]
) -> None:
    masked, _ = mask_request(detector, body)
    assert scan_request(detector, masked).kinds  # so the guard keeps the request local


@pytest.mark.parametrize(
    ("part", "unscannable"),
    [
        ({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}, True),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, True),
        ({"type": "file", "file": {"file_id": "file-1"}}, True),
        ({"type": "text", "text": "data:image/png;base64," + "A" * 80}, True),
        ({"type": "text", "text": "x" * 10 + "QUJD" * 100}, True),
        ({"type": "text", "text": "see " + "\n".join(["QUJD" * 19] * 10)}, True),  # MIME lines
        ({"type": "text", "text": "a normal sentence " * 40}, False),
        ({"type": "text", "text": "一段很长的中文文本，没有空格。" * 40}, False),
    ],
)
def test_unscannable_content(part: dict[str, Any], unscannable: bool) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    assert is_unscannable(body) is unscannable


def test_a_schema_type_union_is_scanned_not_failed(detector: PIIDetector) -> None:
    """`"type": ["string", "null"]` (valid JSON schema) is not a part type to look up."""
    body = chat(tools=[tool(param={"type": ["string", "null"], "description": ID})])
    assert is_unscannable(body) is False
    assert scan_request(detector, body).kinds


def test_a_body_nested_thousands_deep_is_walked_without_recursion() -> None:
    deep: Any = PHONE
    for _ in range(5000):
        deep = [deep]
    assert [leaf.text for leaf in iter_leaves({"metadata": deep})][-1] == PHONE


# --- the answer ----------------------------------------------------------------------------------


def test_whole_answer_restored_in_every_field() -> None:
    mapping = {"<PHONE_1>": PHONE, "<EMAIL_1>": EMAIL}
    payload = {
        "choices": [
            {
                "message": {
                    "content": "call <PHONE_1>",
                    "reasoning_content": "the user is <EMAIL_1>",
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"to": "<EMAIL_1>"}'}}],
                }
            }
        ]
    }
    unmask_tree(payload, mapping)
    message = payload["choices"][0]["message"]
    assert message["content"] == f"call {PHONE}"
    assert message["reasoning_content"] == f"the user is {EMAIL}"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"to": EMAIL}


def test_streamed_tool_call_arguments_and_reasoning_restored() -> None:
    mapping = {"<PHONE_1>": PHONE}
    restorer = StreamRestorer(mapping)
    pieces = ['{"p": "<PHO', "NE_", '1>"}']
    arguments = reasoning = ""
    for i, piece in enumerate(pieces):
        delta = {
            "reasoning_content": piece.replace('{"p": "', "r ").replace('"}', ""),
            "tool_calls": [{"index": 0, "function": {"arguments": piece}}],
        }
        finish = "tool_calls" if i == len(pieces) - 1 else None
        chunk = restorer.chunk({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        out = chunk["choices"][0]["delta"]
        reasoning += out.get("reasoning_content", "")
        arguments += "".join(c["function"]["arguments"] for c in out["tool_calls"])
    assert json.loads(arguments) == {"p": PHONE}
    assert reasoning == f"r {PHONE}"


# --- the stages: fail closed ---------------------------------------------------------------------


def registry() -> Registry:
    reg = Registry()
    reg.add(["local"], Target("local", object(), "local"))  # type: ignore[arg-type]
    reg.add(["cloud"], Target("cloud", object(), "cloud", upstream="up"))  # type: ignore[arg-type]
    return reg


def guarded(
    body: dict[str, Any], detector: PIIDetector | None = None, **privacy: Any
) -> RequestContext:
    settings = PrivacySettings(**privacy)
    reg = registry()
    detector = detector or PIIDetector()
    ctx = RequestContext("chat", body, "cloud", False)
    ctx.targets = [reg.resolve("cloud")]  # type: ignore[list-item]

    async def run() -> None:
        await PIIScan(detector, settings).on_request(ctx)
        await PrivacyGuard(settings, reg, detector).on_request(ctx)

    asyncio.run(run())
    return ctx


class BrokenDetector(PIIDetector):
    def kinds_in(self, text: str) -> set[str]:
        raise RuntimeError("a bug in a rule")


IMAGE = {
    "model": "cloud",
    "messages": [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
        }
    ],
}


@pytest.mark.parametrize("on_pii", ["local", "mask", "allow"])
def test_a_scan_that_raises_keeps_the_request_local(on_pii: str) -> None:
    ctx = guarded(chat(), BrokenDetector(), on_pii=on_pii)
    assert ctx.pii == {SCAN_FAILED}
    assert [t.route for t in ctx.targets] == ["local"]


def test_a_scan_past_its_deadline_keeps_the_request_local() -> None:
    ctx = guarded(chat(metadata={str(i): "text" for i in range(2000)}), scan_timeout_ms=1e-6)
    assert ctx.pii == {SCAN_FAILED}
    assert [t.route for t in ctx.targets] == ["local"]


@pytest.mark.parametrize("on_pii", ["local", "mask", "allow"])
def test_an_image_bound_for_a_cloud_stays_local_by_default(on_pii: str) -> None:
    ctx = guarded(IMAGE, on_pii=on_pii)
    assert UNSCANNABLE in ctx.pii
    assert [t.route for t in ctx.targets] == ["local"]


def test_unscannable_allow_lets_an_image_go() -> None:
    ctx = guarded(IMAGE, unscannable="allow")
    assert ctx.pii == frozenset()
    assert [t.route for t in ctx.targets] == ["cloud"]


def test_reject_refuses_an_unscannable_request() -> None:
    with pytest.raises(RouteRejected):
        guarded(IMAGE, on_pii="reject")


def test_mask_with_personal_data_in_a_verbatim_field_stays_local() -> None:
    body = chat(user=f"mail {EMAIL}", metadata={PHONE: "key"})
    ctx = guarded(body, on_pii="mask")
    assert [t.route for t in ctx.targets] == ["local"]
    assert ctx.pii_mapping is None and ctx.body == body


def test_mask_masks_every_free_text_field() -> None:
    body = chat(user=f"mail {EMAIL}", tools=[tool(f"for {PHONE}")])
    ctx = guarded(body, on_pii="mask")
    assert [t.route for t in ctx.targets] == ["cloud"]
    sent = json.dumps(ctx.body)
    assert EMAIL not in sent and PHONE not in sent
    assert ctx.pii_mapping and set(ctx.pii_mapping.values()) == {EMAIL, PHONE}


# --- the request corpus (tests/data/pii_requests.jsonl, made by make_pii_requests.py) -------------


def test_the_request_corpus_is_found_and_its_clean_rows_are_not(detector: PIIDetector) -> None:
    from collections import Counter
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "data" / "pii_requests.jsonl"
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    # every kind x format, and every field, at least five times
    cells = Counter(
        r["field"] if "field" in r else (r["kind"], r["format"]) for r in rows if r["values"]
    )
    assert min(cells.values()) >= 5 and len({r["field"] for r in rows if "field" in r}) >= 14
    missed = [r["id"] for r in rows if r["values"] and r["kind"] not in scan(detector, r)]
    assert missed == []
    clean = [r for r in rows if not r["values"]]
    assert len({r["kind"] for r in clean}) == 13 and len(clean) >= 65
    flagged = [r["id"] for r in clean if scan(detector, r)]
    assert len(flagged) <= 0.02 * len(clean), flagged


def scan(detector: PIIDetector, row: dict[str, Any]) -> set[str]:
    return scan_request(detector, row["body"]).kinds


def test_a_model_name_carrying_personal_data_is_not_kept() -> None:
    ctx = RequestContext("chat", chat(model="13812345678"), "13812345678", False)
    asyncio.run(PIIScan(PIIDetector()).on_request(ctx))
    assert "phone" in ctx.pii and "13812345678" not in ctx.model and ctx.model == "<PHONE>"


def test_the_scans_walk_reads_what_masking_reads() -> None:
    """The scan walks the body without paths (it runs on every request); it must read the same
    texts, in the same order and with the same verbatim flags, as the walk masking uses."""
    from thrifty.gateway.pii_request import _scan_texts

    path = Path(__file__).resolve().parents[1] / "data" / "pii_requests.jsonl"
    bodies = [json.loads(line)["body"] for line in path.read_text("utf-8").splitlines()]
    assert len(bodies) > 400
    for body in bodies:
        texts, unscannable = _scan_texts(body)
        assert texts == [(leaf.text, leaf.verbatim) for leaf in iter_leaves(body)]
        assert unscannable == is_unscannable(body)


def test_model_names_the_gateway_serves_are_not_the_users_data() -> None:
    """A served model's name is the operator's (skipped); any other name is scanned."""
    body = {"model": f"crm-{PHONE}", "messages": [{"role": "user", "content": "hi"}]}
    detector = PIIDetector()
    assert "phone" in scan_request(detector, body).kinds
    assert scan_request(detector, body, known=frozenset({f"crm-{PHONE}"})).kinds == set()
    body["messages"][0]["content"] = f"crm-{PHONE}"  # free text is scanned whatever it says
    assert "phone" in scan_request(detector, body, known=frozenset({f"crm-{PHONE}"})).kinds


@pytest.mark.parametrize(
    ("body", "unscannable"),
    [
        ({"model": "m", "prompt": [9906, 11, 856, 4641, 374]}, True),
        ({"model": "m", "prompt": [[9906, 11], [856, 4641]]}, True),
        ({"model": "m", "input": [9906, 11, 856]}, True),
        ({"model": "m", "input": [[9906, 11], [856]]}, True),
        ({"model": "m", "prompt": ["hello", "world"]}, False),
        ({"model": "m", "input": ["hello"]}, False),
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": ["x"]}, False),
        ({"model": "m", "metadata": {"input": [1, 2, 3]}}, False),  # not the text field
    ],
)
def test_token_ids_are_unscannable(
    detector: PIIDetector, body: dict[str, Any], unscannable: bool
) -> None:
    """Token ids are text in the upstream's tokenizer, which the gateway does not have."""
    assert scan_request(detector, body).unscannable is unscannable
    assert is_unscannable(body) is unscannable


@pytest.mark.parametrize(
    "pieces", [("值 138", "1234", "5678 好"), ("id 110105", "19900307", "1239")]
)
def test_a_value_cut_into_three_strings_is_found_and_kept_local_under_mask(
    detector: PIIDetector, pieces: tuple[str, ...]
) -> None:
    """Masking replaces values split across two strings; one cut into three is found by the
    scan but not masked, so the guard keeps the request local (fails closed)."""
    body = chat(
        messages=[{"role": "user", "content": [{"type": "text", "text": p} for p in pieces]}]
    )
    assert scan_request(detector, body).kinds
    ctx = RequestContext("chat", body, "cloud", False)
    asyncio.run(PIIScan(detector).on_request(ctx))
    registry = Registry()
    registry.add(["local"], Target("local", object(), "local"))  # type: ignore[arg-type]
    cloud = Target("cloud", object(), "c", upstream="cloud")  # type: ignore[arg-type]
    ctx.targets = [cloud]
    asyncio.run(PrivacyGuard(PrivacySettings(on_pii="mask"), registry, detector).on_request(ctx))
    assert [t.route for t in ctx.targets] == ["local"] and ctx.body == body


@pytest.mark.parametrize("number", [13812345678, 13812345678.0, 1.3812345678e10, -13812345678])
def test_a_number_field_is_read_as_written(detector: PIIDetector, number: float) -> None:
    """A JavaScript client may send any number as a float: 13812345678.0 is the phone."""
    assert scan_request(detector, chat(metadata={"n": number})).kinds == {"phone"}


def test_one_long_string_cannot_hold_the_scan_past_its_deadline() -> None:
    """The deadline is checked inside the loops that run long on one text (digit groups,
    addresses), not only between strings: a late scan ends in ScanTimeout (kept local)."""
    import time

    from thrifty.gateway._pii_rules import DEADLINE, ScanTimeout

    detector = PIIDetector()
    spam = ["1 " * 5000, "北京市朝阳区建国路88号 " * 200, "1.1.1.1 " * 2000]
    for text in spam:
        token = DEADLINE.set(time.perf_counter() - 1)  # already past
        try:
            with pytest.raises(ScanTimeout):
                detector.kinds_in(text)
        finally:
            DEADLINE.reset(token)
        assert detector.kinds_in(text) == set()  # no deadline: scanned whole, nothing half-kept
    plain = "Where is my parcel? " * 100  # nothing that loops: the check costs nothing there
    token = DEADLINE.set(time.perf_counter() - 1)
    try:
        assert detector.kinds_in(plain) == set()
    finally:
        DEADLINE.reset(token)
    found = scan_kinds(
        detector, {"messages": [{"role": "user", "content": spam[0]}]}, 0.0, "local", "r1"
    )
    assert found == {SCAN_FAILED}
    assert DEADLINE.get() is None  # the scan's deadline ends with the scan
