"""Reformatted values and the kinds beyond numbers (thrifty.gateway.pii)."""

from __future__ import annotations

import pytest

from thrifty.gateway.pii import Masker, PIIDetector, unmask

ID = "110105199003071239"  # Beijing, born 1990-03-07, valid check digit
MOBILE = "13812345678"
UNIONPAY_19 = "6217000012345678915"  # Luhn-valid


@pytest.fixture(scope="module")
def detector() -> PIIDetector:
    return PIIDetector()


def found(detector: PIIDetector, text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in detector.scan(text)]


def test_the_card_numbers_here_are_luhn_valid() -> None:
    from thrifty.gateway._pii_rules import id_card_ok, luhn_ok

    assert luhn_ok(UNIONPAY_19) and id_card_ok(ID)


# --- reformatted values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shown",
    [
        "1101.0519.9003.0712.39",
        "110105/19900307/1239",
        "1101 0519 9003 0712 39",
        "110105\u200b19900307\u200c1239",
        "1\u200d10105199003071239",
        "１１０１０５ １９９００３０７ １２３９",
        "11-01-05-19-90-03-07-12-39",
    ],
)
def test_id_card_in_any_grouping_or_with_invisible_characters(
    detector: PIIDetector, shown: str
) -> None:
    assert found(detector, f"证件：{shown}。") == [("id_card", shown)]


@pytest.mark.parametrize(
    "shown",
    [
        "138.1234.5678",
        "1381 2345 678",
        "138/1234/5678",
        "1 3 8 1 2 3 4 5 6 7 8",
        "138\u200b12345678",
    ],
)
def test_mobile_in_any_grouping(detector: PIIDetector, shown: str) -> None:
    assert found(detector, f"call {shown} today") == [("phone", shown)]


@pytest.mark.parametrize(
    "shown",
    [
        "li.na at example dot com",
        "li.na [at] example [dot] com",
        "li.na(at)example(dot)co(dot)uk",
        "li.na@example。com",
        "li.na＠example。com",
        "LI.NA AT EXAMPLE DOT COM",
    ],
)
def test_spelled_out_emails(detector: PIIDetector, shown: str) -> None:
    assert found(detector, f"write to {shown} please") == [("email", shown)]


@pytest.mark.parametrize(
    "text",
    [
        "look at example dot com for details",
        "we met at noon. Then we left",
        "the dot com bubble at its peak",
        "arrive at the station.com",
    ],
)
def test_prose_with_at_and_dot_is_not_an_email(detector: PIIDetector, text: str) -> None:
    assert "email" not in detector.kinds_in(text)


def test_debit_cards_grouped_any_way(detector: PIIDetector) -> None:
    for shown in (f"{UNIONPAY_19[:6]} {UNIONPAY_19[6:]}", UNIONPAY_19, "6217.0000.1234.5678.915"):
        assert found(detector, f"转账到 {shown} 谢谢") == [("bank_card", shown)]


def test_ssn_with_spaces_or_after_its_word(detector: PIIDetector) -> None:
    assert found(detector, "SSN 123 45 6789") == [("us_ssn", "123 45 6789")]
    assert found(detector, "my ssn is 123456789") == [("us_ssn", "123456789")]
    assert "us_ssn" not in detector.kinds_in("order 123456789 shipped")


def test_tables_of_small_numbers_are_not_joined(detector: PIIDetector) -> None:
    for text in (
        "scores 15 20 25 30 35 40 45",
        "v1.2.3.4567 on 2024-01-15 10:30",
        "192.168.100.200",
    ):
        assert detector.kinds_in(text) <= {"ip_address"}


# --- new kinds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call (415) 555-2671 after six", "(415) 555-2671"),
        ("reach me on +1 415 555 2671", "+1 415 555 2671"),
        ("London office +44 20 7946 0958", "+44 20 7946 0958"),
        ("Berlin: 0049 30 1234 5678", "0049 30 1234 5678"),
        ("phone: 020 7946 0958", "020 7946 0958"),
        ("her cell is 415.555.2671", "415.555.2671"),
    ],
)
def test_international_phones(detector: PIIDetector, text: str, value: str) -> None:
    assert found(detector, text) == [("intl_phone", value)]


@pytest.mark.parametrize(
    "text",
    ["客服热线 400-800-8888", "ISBN 978-0-13-468599-1", "call at 10:30 on 2024-03-15", "+5 points"],
)
def test_phone_look_alikes(detector: PIIDetector, text: str) -> None:
    assert "intl_phone" not in detector.kinds_in(text)


def test_landlines_are_phones(detector: PIIDetector) -> None:
    assert found(detector, "座机 010-62345678") == [("phone", "010-62345678")]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("车停在京A·12345旁边", "京A·12345"),
        ("粤B D12345 是新能源车", "粤B D12345"),
        ("我的车牌号是京A·PZR6D", "京A·PZR6D"),
        ("licence plate AB12 CDE", "AB12 CDE"),
        ("Kennzeichen B-AB 1234", "B-AB 1234"),
        ("plate number: 7ABC123", "7ABC123"),
    ],
)
def test_license_plates(detector: PIIDetector, text: str, value: str) -> None:
    assert found(detector, text) == [("license_plate", value)]


@pytest.mark.parametrize(
    "text", ["京东A轮融资", "template 12AB34", "the plate was hot", "新A款车型"]
)
def test_plate_look_alikes(detector: PIIDetector, text: str) -> None:
    assert "license_plate" not in detector.kinds_in(text)


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("社保卡号：3301061990", "social_insurance", "3301061990"),
        ("my social insurance number is 046 454 286", "social_insurance", "046 454 286"),
        ("NINO QQ 12 34 56 C", "social_insurance", "QQ 12 34 56 C"),
        ("病历号：ZY20240001", "medical_record", "ZY20240001"),
        ("MRN: 00123456", "medical_record", "00123456"),
        ("patient id P-20240517", "medical_record", "P-20240517"),
        ("Reisepassnummer C01X00T47", "passport", "C01X00T47"),
        ("passport number is C01X00T47", "passport", "C01X00T47"),
    ],
)
def test_keyword_anchored_kinds(detector: PIIDetector, text: str, kind: str, value: str) -> None:
    assert found(detector, text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    ["社保缴纳了3年", "sin(x) + 2024", "medical record keeping since 1990s", "passport PHOTOS"],
)
def test_keyword_look_alikes(detector: PIIDetector, text: str) -> None:
    assert detector.kinds_in(text) == set()


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("收件人：张伟，北京市朝阳区建国路88号", ["张伟", "北京市朝阳区建国路88号"]),
        (
            "我家住在上海市浦东新区世纪大道100号3单元502室",
            ["上海市浦东新区世纪大道100号3单元502室"],
        ),
        ("李娜住在杭州市西湖区文三路478号", ["李娜", "杭州市西湖区文三路478号"]),
        ("Mr John Smith, 12 Baker Street, London", ["John Smith", "12 Baker Street, London"]),
        ("Ship to: Jane Doe, 1600 Pennsylvania Avenue, Washington, DC 20500", ["Jane Doe"]),
        ("I live at 42 Elm Road, Apt 4B", ["42 Elm Road, Apt 4B"]),
    ],
)
def test_names_with_addresses(detector: PIIDetector, text: str, parts: list[str]) -> None:
    values = " | ".join(v for k, v in found(detector, text) if k == "name_address")
    assert values and all(part in values for part in parts), values


@pytest.mark.parametrize(
    "text",
    [
        "公司地址：北京市海淀区中关村大街27号",
        "王府井大街1号是一家百货商店",
        "Our office is at 1 Infinite Loop Drive, Cupertino",
        "张伟是一位作家",
        "Apple Inc, 1 Apple Park Way, Cupertino",
    ],
)
def test_address_or_name_alone_is_not_personal(detector: PIIDetector, text: str) -> None:
    assert "name_address" not in detector.kinds_in(text)


def test_without_the_segmenter_cue_words_still_find_names() -> None:
    plain = PIIDetector(segmenter=False)
    assert "name_address" in plain.kinds_in("收件人：张伟，北京市朝阳区建国路88号")
    assert "name_address" in plain.kinds_in("王先生，北京市朝阳区建国路88号")


# --- masking the original span --------------------------------------------------------------------


def test_masking_replaces_the_original_span_of_a_normalised_value() -> None:
    masker = Masker(PIIDetector())
    text = "ID 110105\u200b19900307\u200c1239, mail li.na at example dot com, 车牌京A·12345"
    [message], mapping = masker.mask_messages([{"role": "user", "content": text}])
    masked = message["content"]
    assert "1239" not in masked and "example" not in masked and "12345" not in masked
    assert unmask(masked, mapping) == text
