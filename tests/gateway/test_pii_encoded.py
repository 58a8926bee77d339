"""Personal data in an encoding read at a glance (percent, character references, base64) is
found, masked as the whole token and restored as written; clean tokens stay clean. Digits of
other scripts are digits, and a 15-digit ID of before 1999 is found after its keyword."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from thrifty.gateway.pii import PIIDetector, unmask
from thrifty.gateway.pii_request import mask_request, scan_request

ID = "110105199003071239"
PHONE = "13812345678"
EMAIL = "li.na@example.com"


@pytest.fixture(scope="module")
def detector() -> PIIDetector:
    return PIIDetector()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def percent_all(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"decode this: {b64(f'my phone {PHONE}')}", "phone"),
        (f"x {b64(ID)} y", "id_card"),
        (b64(PHONE).rstrip("="), "phone"),  # unpadded
        (base64.urlsafe_b64encode(f"mail {EMAIL}??>>".encode()).decode(), "email"),
        (f"https://crm.example/find?e={quote(EMAIL)}", "email"),
        (f"q={percent_all(PHONE)}", "phone"),
        (f"q={quote(f'身份证号{ID}')}", "id_card"),
        ("tel: " + "".join(f"&#{ord(c)};" for c in PHONE), "phone"),
        ("tel: " + "".join(f"&#x{ord(c):x};" for c in PHONE), "phone"),
        (b64(f"p={percent_all(PHONE)}"), "phone"),  # two layers
        (f"手机号（base64）：{b64(PHONE)}。", "phone"),
    ],
)
def test_encoded_personal_data_is_found(detector: PIIDetector, text: str, kind: str) -> None:
    assert kind in detector.kinds_in(text)
    assert [f.kind for f in detector.scan(text)] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "internationalization and supercalifragilisticexpialidocious",
        "see https://example.com/blog/2024/03/llm-cost-optimization%20guide",
        b64("hello world, how are you today?"),
        "sha256 88f65686b5b8839c7fca7792bacc8243ca2018588ba8c69115a2f974ae9cda08",
        "uuid bea802e9-f9f6-0ce1-37bd-b0a2d6e5dee0, token sk_live_AbCdEf0123456789",
        "50% off, 100%25 sure, a&#b; c",
        b64(b64(b64(PHONE))),  # three layers: past the depth read
    ],
)
def test_clean_tokens_are_not_flagged(detector: PIIDetector, text: str) -> None:
    assert detector.kinds_in(text) == set()


def test_a_masked_token_is_replaced_whole_and_restored_as_written(detector: PIIDetector) -> None:
    token = b64(f"my phone {PHONE}")
    url = f"https://crm.example/find?e={quote(EMAIL)}"
    body = {"messages": [{"role": "user", "content": f"decode {token} and open {url} please"}]}
    masked, mapping = mask_request(detector, body)
    sent = masked["messages"][0]["content"]
    assert sent == "decode <PHONE_1> and open <EMAIL_1> please"
    assert scan_request(detector, masked).kinds == set()
    assert unmask(sent, mapping) == body["messages"][0]["content"]


@pytest.mark.parametrize(
    "zero", [0x0660, 0x0966, 0x1D7CE, 0x0E50]
)  # Arabic-Indic, Devanagari, 𝟎, Thai
def test_other_scripts_digits_are_read_as_digits(detector: PIIDetector, zero: int) -> None:
    shown = "".join(chr(zero + int(c)) for c in PHONE)
    text = f"电话 {shown}，谢谢"
    assert [(f.kind, f.value) for f in detector.scan(text)] == [("phone", shown)]
    masked, mapping = mask_request(detector, {"messages": [{"role": "user", "content": text}]})
    assert masked["messages"][0]["content"] == "电话 <PHONE_1>，谢谢" and mapping == {
        "<PHONE_1>": shown
    }


def test_list_markers_are_not_digits(detector: PIIDetector) -> None:
    """Enclosed digits number lists: ①13812345678 is the first item, a phone."""
    assert detector.kinds_in(f"联系方式：①{PHONE} ②暂无") == {"phone"}


@pytest.mark.parametrize(
    "text",
    [
        "旧身份证号 110105900307123",
        "身份证号码是110105 900307 123",
        "my id number is 110105-900307-123",
    ],
)
def test_a_15_digit_id_of_before_1999_is_found_after_its_keyword(
    detector: PIIDetector, text: str
) -> None:
    assert [f.kind for f in detector.scan(text)] == ["id_card"]


@pytest.mark.parametrize(
    "text",
    ["订单 110105900307123", "身份证 123456789012345", "身份证号 110105900230123"],  # 30 Feb
)
def test_a_15_digit_number_is_no_id_without_the_keyword_region_and_date(
    detector: PIIDetector, text: str
) -> None:
    assert detector.kinds_in(text) == set()
