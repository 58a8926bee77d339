"""PII detection, masking and stream unmasking (thrifty.gateway.pii)."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from thrifty.gateway.pii import (
    PII_KINDS,
    Finding,
    Masker,
    PIIDetector,
    StreamUnmasker,
    unmask,
)

DATA = Path(__file__).resolve().parents[1] / "data"


# --- numbers with valid checksums, computed here so every example can be read and re-derived ----


def id_card(first17: str) -> str:
    """Complete a resident ID with its ISO 7064 MOD 11-2 check character."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


def luhn(body: str) -> str:
    """Complete a card number with its Luhn check digit."""
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


def wrong_last(number: str) -> str:
    """The same number with its check digit off by one."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


ID = id_card("11010519491231003")  # Beijing, born 1949-12-31
ID_X = id_card("44030519900307009")  # its check character is X
UNIONPAY_16 = luhn("622202123456789")
UNIONPAY_19 = luhn("621700000012345678")
VISA = luhn("411111111111111")
MASTERCARD = luhn("545454545454545")
AMEX = luhn("37828224631000")
JCB = luhn("353011133330000")

assert ID[-1].isdigit() and ID_X.endswith("X")
# The helpers agree with published examples: GB 11643's sample ID, the networks' test cards.
assert id_card("11010519491231002") == "11010519491231002X"
assert (VISA, AMEX) == ("4111111111111111", "378282246310005")


@pytest.fixture(scope="module")
def detector() -> PIIDetector:
    return PIIDetector()


def found(detector: PIIDetector, text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in detector.scan(text)]


# --- construction ---------------------------------------------------------------------------------


def test_kinds_are_the_documented_names() -> None:
    assert {
        "id_card",
        "phone",
        "bank_card",
        "credit_card",
        "email",
        "ip_address",
        "passport",
        "us_ssn",
        "intl_phone",
        "license_plate",
        "social_insurance",
        "medical_record",
        "name_address",
    } == PII_KINDS


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="ssn"):
        PIIDetector(["phone", "ssn"])
    with pytest.raises(TypeError):
        PIIDetector("phone")


def test_a_detector_finds_only_its_kinds() -> None:
    text = f"电话13812345678，邮箱a.b@qq.com，身份证{ID}"
    assert PIIDetector(["email"]).kinds_in(text) == {"email"}
    assert {f.kind for f in PIIDetector(["phone", "id_card"]).scan(text)} == {"phone", "id_card"}
    assert PIIDetector([]).scan(text) == []


def test_finding_repr_leaves_the_value_out() -> None:
    assert "13812345678" not in repr(Finding("phone", 0, 11, "13812345678"))


# --- id_card --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shown",
    [
        ID,
        ID_X,
        ID_X[:-1] + "x",
        f"{ID[:6]} {ID[6:14]} {ID[14:]}",
        f"{ID[:6]}-{ID[6:14]}-{ID[14:]}",
    ],
)
def test_id_card_found(detector: PIIDetector, shown: str) -> None:
    assert found(detector, f"身份证号：{shown}，请核实") == [("id_card", shown)]


@pytest.mark.parametrize(
    "number",
    [
        wrong_last(ID),  # checksum fails
        id_card("11010519490230003"),  # 30 February
        id_card("11010520990101003"),  # born in the future
        id_card("11010518991231003"),  # born before 1900
        id_card("99010519491231003"),  # no such region
        "2024" + ID,  # inside a longer run of digits
    ],
)
def test_id_card_not_found(detector: PIIDetector, number: str) -> None:
    assert "id_card" not in detector.kinds_in(f"编号 {number} 已登记")


# --- phone ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shown",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 13812345678",
        "+86-138-1234-5678",
        "+8619912345678",
        "008613812345678",
        "(+86)13812345678",
        "8615012345678",
    ],
)
def test_phone_found_with_its_prefix(detector: PIIDetector, shown: str) -> None:
    text = f"我的电话是{shown}，谢谢"
    assert found(detector, text) == [("phone", shown)]
    [finding] = detector.scan(text)
    assert text[finding.start : finding.end] == shown


@pytest.mark.parametrize(
    "text",
    [
        "code 12345678901",  # 12 is not a mobile prefix
        "code 10086123456",
        "order 2024031513812345678",  # inside a longer digit run
        "order 13812345678901234",
        "pi is about 3.13812345678",  # decimals continue a run
        "1381234567 has ten digits",
    ],
)
def test_phone_not_found(detector: PIIDetector, text: str) -> None:
    assert detector.kinds_in(text) == set()


# --- cards ----------------------------------------------------------------------------------------


def group4(number: str, sep: str = " ") -> str:
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


@pytest.mark.parametrize(
    "shown",
    [UNIONPAY_16, UNIONPAY_19, group4(UNIONPAY_16), group4(UNIONPAY_19, "-")],
)
def test_unionpay_is_a_bank_card(detector: PIIDetector, shown: str) -> None:
    assert found(detector, f"收款卡号 {shown}") == [("bank_card", shown)]


@pytest.mark.parametrize(
    "shown",
    [
        VISA,
        group4(VISA),
        MASTERCARD,
        group4(MASTERCARD, "-"),
        AMEX,
        f"{AMEX[:4]} {AMEX[4:10]} {AMEX[10:]}",
        JCB,
    ],
)
def test_scheme_cards_are_credit_cards(detector: PIIDetector, shown: str) -> None:
    assert found(detector, f"charged to {shown} yesterday") == [("credit_card", shown)]


def test_a_detector_without_credit_card_reports_scheme_cards_as_bank_cards() -> None:
    assert PIIDetector(["bank_card"]).kinds_in(f"card {VISA}") == {"bank_card"}
    assert PIIDetector(["credit_card"]).kinds_in(f"card {UNIONPAY_16}") == set()


@pytest.mark.parametrize(
    "text",
    [
        f"card {wrong_last(UNIONPAY_16)}",  # Luhn fails
        f"card {group4(wrong_last(VISA))}",
        f"order {luhn('123456789012345')}",  # Luhn-valid, but no bank prefix and no card word
        f"order {UNIONPAY_16}0",  # 17 digits now, and the check digit no longer checks
        f"ref 99{UNIONPAY_19}",  # inside a longer run
    ],
)
def test_card_not_found(detector: PIIDetector, text: str) -> None:
    assert not detector.kinds_in(text) & {"bank_card", "credit_card"}


def test_a_short_group_after_a_grouped_card_may_start_the_next_number(
    detector: PIIDetector,
) -> None:
    text = f"卡号 {group4(UNIONPAY_16)} 138 1234 5678"
    assert found(detector, text) == [("bank_card", group4(UNIONPAY_16)), ("phone", "138 1234 5678")]


def test_bare_luhn_number_is_a_bank_card_next_to_a_card_word(detector: PIIDetector) -> None:
    number = luhn("123456789012345")
    assert detector.kinds_in(f"银行卡号：{number}") == {"bank_card"}


# --- email, ip, passport, ssn ---------------------------------------------------------------------


def test_email_found_with_exact_span(detector: PIIDetector) -> None:
    text = "邮箱zhang.san+work@mail.tsinghua.edu.cn。See you."
    [finding] = detector.scan(text)
    assert (finding.kind, finding.value) == ("email", "zhang.san+work@mail.tsinghua.edu.cn")


@pytest.mark.parametrize(
    "text", ["@dataclass\nclass A: ...", "ping me @alice", "user@localhost", "a@b"]
)
def test_email_not_found(detector: PIIDetector, text: str) -> None:
    assert "email" not in detector.kinds_in(text)


@pytest.mark.parametrize(
    "address",
    [
        "192.168.1.10",
        "10.0.12.7",
        "183.14.132.57",
        "2001:db8::8a2e:370:7334",
        "fe80::1ff:fe23:4567:890a",
    ],
)
def test_ip_address_found(detector: PIIDetector, address: str) -> None:
    assert found(detector, f"login from {address}.") == [("ip_address", address)]


@pytest.mark.parametrize(
    "text",
    [
        "Python 3.11.7",
        "version 1.2.3",
        "v10.20.30.40",
        "256.1.1.1",
        "127.0.0.1:8000",
        "0.0.0.0",
        "netmask 255.255.255.0",
        "section 1.2.3.4",
        "10.20.30.40.50",
        "std::vector<int> v; a::b",
        "at 10:30:45",
        "::1",
        "mac 00:1A:2B:3C:4D:5E",
    ],
)
def test_ip_address_not_found(detector: PIIDetector, text: str) -> None:
    assert "ip_address" not in detector.kinds_in(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("护照号码：E12345678", "E12345678"),
        ("passport G87654321 (old)", "G87654321"),
        ("证件 EA1234567", "EA1234567"),
        ("My passport number is 512345678.", "512345678"),
        ("Passport No. AB1234567", "AB1234567"),
        ("护照号是 123456789", "123456789"),
    ],
)
def test_passport_found(detector: PIIDetector, text: str, value: str) -> None:
    assert found(detector, text) == [("passport", value)]


@pytest.mark.parametrize(
    "text", ["ticket 512345678", "part XE12345678", "E123456789 is a serial", "renew my passport"]
)
def test_passport_not_found(detector: PIIDetector, text: str) -> None:
    assert "passport" not in detector.kinds_in(text)


def test_us_ssn_found(detector: PIIDetector) -> None:
    assert found(detector, "SSN: 123-45-6789.") == [("us_ssn", "123-45-6789")]


@pytest.mark.parametrize(
    "ssn", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"]
)
def test_us_ssn_invalid_ranges_not_found(detector: PIIDetector, ssn: str) -> None:
    assert "us_ssn" not in detector.kinds_in(f"SSN {ssn}")


# --- full-width text and offsets ------------------------------------------------------------------


def to_fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


@pytest.mark.parametrize(
    ("plain", "kind"),
    [
        ("13812345678", "phone"),
        (ID_X, "id_card"),
        ("li.na@qq.com", "email"),
        (UNIONPAY_16, "bank_card"),
    ],
)
def test_fullwidth_forms_are_found_at_original_offsets(
    detector: PIIDetector, plain: str, kind: str
) -> None:
    shown = to_fullwidth(plain)
    text = f"联系方式：{shown}，谢谢。"
    [finding] = detector.scan(text)
    assert (finding.kind, finding.value) == (kind, shown)
    assert text[finding.start : finding.end] == shown


def test_fullwidth_separators_between_ascii_digits(detector: PIIDetector) -> None:
    assert found(detector, "电话＋86 138－1234－5678") == [("phone", "＋86 138－1234－5678")]


def test_findings_are_sorted_non_overlapping_and_slice_the_text(detector: PIIDetector) -> None:
    text = (
        f"Email 13812345678@163.com, call +86 139 1234 5678, ID {ID}, card {group4(VISA)}, "
        f"ip 192.168.0.23 and again 13812345678"
    )
    findings = detector.scan(text)
    assert [f.kind for f in findings] == [
        "email",
        "phone",
        "id_card",
        "credit_card",
        "ip_address",
        "phone",
    ]
    for before, after in itertools.pairwise(findings):
        assert before.end <= after.start
    assert all(text[f.start : f.end] == f.value for f in findings)
    assert detector.kinds_in(text) == {f.kind for f in findings}


def test_kinds_in_counts_overlapping_findings_that_scan_merges(detector: PIIDetector) -> None:
    assert found(detector, "13812345678@163.com") == [("email", "13812345678@163.com")]
    assert detector.kinds_in("13812345678@163.com") == {"email", "phone"}


def test_clean_text_has_no_findings(detector: PIIDetector) -> None:
    assert detector.scan("请帮我写一首关于春天的诗，不要超过八句。") == []
    assert detector.scan("") == []


# --- messages -------------------------------------------------------------------------------------


def test_scan_messages_reads_every_place_text_lives(detector: PIIDetector) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "客户邮箱 wang@163.com"},
        {"role": "user", "content": "hi", "name": "user_13812345678"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"id": ID})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ip 10.1.2.30"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "f", "arguments": "ssn 123-45-6789"},
        },
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"https://x.test/{VISA}.png"}},
                {"type": "text", "text": f"card {UNIONPAY_16}"},
            ],
        },
    ]
    assert detector.scan_messages(messages) == {
        "email",
        "phone",
        "id_card",
        "ip_address",
        "us_ssn",
        "bank_card",
    }  # not credit_card: the Visa number is only in an image part's URL


def test_scan_messages_reads_through_json_unicode_escapes(detector: PIIDetector) -> None:
    result = json.dumps({"note": "手机号13812345678", "id": to_fullwidth(ID)})  # ensure_ascii
    assert "\\u53f713812345678" in result  # 号's escape ends in a digit
    assert detector.kinds_in(result) == set()
    assert detector.scan_messages([{"role": "tool", "content": result}]) == {"phone", "id_card"}


def test_scan_messages_of_a_clean_chat_is_empty(detector: PIIDetector) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "Summarize PEP 8."}]},
        {"role": "assistant", "content": None},
    ]
    assert detector.scan_messages(messages) == set()


# --- masking --------------------------------------------------------------------------------------


@pytest.fixture
def masker(detector: PIIDetector) -> Masker:
    return Masker(detector)


def test_masking_round_trip_keeps_inputs_and_numbers_placeholders_per_kind(masker: Masker) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "客户电话13812345678，邮箱a@qq.com"},
        {
            "role": "user",
            "name": "tel_13912345678",
            "content": [
                {"type": "text", "text": "再打13812345678或者13912345678"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"to": "a@qq.com"}'},
                }
            ],
        },
    ]
    before = copy.deepcopy(messages)
    masked, mapping = masker.mask_messages(messages)

    assert messages == before
    assert masked is not messages and all(m is not o for m, o in zip(masked, messages, strict=True))
    assert masked[0]["content"] == "客户电话<PHONE_1>，邮箱<EMAIL_1>"
    assert masked[1]["content"][0]["text"] == "再打<PHONE_1>或者<PHONE_2>"
    assert masked[1]["content"][1] == messages[1]["content"][1]
    assert masked[1]["name"] == "tel_<PHONE_2>"  # an upstream refuses it: fail closed
    assert masked[2]["tool_calls"][0]["function"]["arguments"] == '{"to": "<EMAIL_1>"}'
    assert mapping == {
        "<PHONE_1>": "13812345678",
        "<PHONE_2>": "13912345678",
        "<EMAIL_1>": "a@qq.com",
    }
    assert masker.unmask(masked[0]["content"], mapping) == messages[0]["content"]
    assert (
        masker.unmask(masked[1]["content"][0]["text"], mapping) == messages[1]["content"][0]["text"]
    )


def test_masking_skips_placeholders_the_prompt_already_contains(masker: Masker) -> None:
    text = "模板里写着<PHONE_1>，真实号码是13812345678"
    [message], mapping = masker.mask_messages([{"role": "user", "content": text}])
    assert mapping == {"<PHONE_2>": "13812345678"}
    assert masker.unmask(message["content"], mapping) == text


def test_masked_messages_have_no_pii_left(masker: Masker, detector: PIIDetector) -> None:
    rows = [
        json.loads(line) for line in (DATA / "pii_prompts.jsonl").read_text("utf-8").splitlines()
    ]
    for row in rows:
        masked, mapping = masker.mask_messages(row["messages"])
        assert detector.scan_messages(masked) == set(), row
        assert mapping


def test_unmask_leaves_unknown_placeholders() -> None:
    assert unmask("<PHONE_1> and <PHONE_9>", {"<PHONE_1>": "138"}) == "138 and <PHONE_9>"


# --- streaming ------------------------------------------------------------------------------------

MAPPING = {"<PHONE_1>": "13812345678", "<ID_CARD_1>": ID, "<EMAIL_12>": "a@qq.com"}
STREAMED = "请联系<PHONE_1>，证件<ID_CARD_1>。<EMAIL_12> <EMAIL_1> a<b <PHONE_1><PHONE_1"


def stream(pieces: list[str]) -> str:
    unmasker = StreamUnmasker(MAPPING)
    return "".join(unmasker.feed(piece) for piece in pieces) + unmasker.flush()


def test_stream_unmasker_at_every_split_point() -> None:
    expected = unmask(STREAMED, MAPPING)
    assert "13812345678" in expected and "<EMAIL_1>" in expected
    for cut in range(len(STREAMED) + 1):
        assert stream([STREAMED[:cut], STREAMED[cut:]]) == expected, cut


def test_stream_unmasker_one_character_at_a_time() -> None:
    assert stream(list(STREAMED)) == unmask(STREAMED, MAPPING)


def test_stream_unmasker_holds_back_only_a_possible_placeholder() -> None:
    unmasker = StreamUnmasker(MAPPING)
    assert unmasker.feed("call <PHO") == "call "
    assert unmasker.feed("NE_1> now <b") == "13812345678 now <b"
    assert unmasker.feed("<EMAIL_1") == ""  # still a prefix of <EMAIL_12>
    assert unmasker.flush() == "<EMAIL_1"


# --- corpora --------------------------------------------------------------------------------------


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines()]


def test_every_labelled_kind_in_the_pii_corpus_is_found(detector: PIIDetector) -> None:
    rows = load("pii_prompts.jsonl")
    assert len(rows) >= 220
    leaks = [
        (row["kinds"], sorted(detector.scan_messages(row["messages"])), row["messages"])
        for row in rows
        if not set(row["kinds"]) <= detector.scan_messages(row["messages"])
    ]
    assert all(set(row["kinds"]) <= PII_KINDS and row["kinds"] for row in rows)
    assert leaks == []


def test_clean_corpus_false_positive_rate(detector: PIIDetector) -> None:
    rows = load("clean_prompts.jsonl")
    assert len(rows) >= 220
    flagged = [row for row in rows if detector.scan_messages(row["messages"])]
    rate = len(flagged) / len(rows)
    print(f"clean corpus: {len(flagged)}/{len(rows)} flagged, false-positive rate {rate:.1%}")
    assert rate <= 0.02, flagged


def test_a_long_text_seen_before_is_judged_as_before_and_a_changed_one_afresh(
    detector: PIIDetector,
) -> None:
    # a chat resends its history on every turn: long texts are remembered by digest
    history = "请帮我查询订单状态，我上周买的耳机还没有到。Please check where my order is. " * 20
    assert detector.kinds_in(history) == set()
    with_phone = history + "我的手机号是13812345678。"
    assert detector.kinds_in(with_phone) == {"phone"}  # not the clean text's answer
    assert detector.kinds_in(with_phone) == {"phone"}  # remembered: the same answer
    assert detector.kinds_in(history) == set()
    found = detector.kinds_in(with_phone)
    found.add("email")  # the caller's set is its own: the memo is not changed through it
    assert detector.kinds_in(with_phone) == {"phone"}
