"""Write tests/data/pii_requests.jsonl: whole chat requests carrying personal data, and clean
look-alikes, for the privacy corpus test (tests/e2e/test_privacy_corpus.py).

Run it again after changing it: ``python tests/data/make_pii_requests.py``. It is deterministic
(one seeded generator), and every number with a checksum is computed, not copied.

A row: ``{"id", "group": "kind" | "field" | "clean", "kind", "format" | "field", "values",
"body"}``. ``values`` are the exact strings that must never reach a cloud (for a value split
across two messages, both pieces); ``body`` is the request as a client sends it, with
``"model": "MODEL"`` for the test to fill in.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("pii_requests.jsonl")
ROWS_PER_CELL = 5
rng = random.Random(20261202)

# --- values -------------------------------------------------------------------------------------

REGIONS = ["110105", "310115", "440305", "330106", "510107", "420106", "320102", "370202"]
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_card() -> str:
    body = (
        rng.choice(REGIONS)
        + f"{rng.randint(1950, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        + f"{rng.randint(0, 999):03d}"
    )
    total = sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def luhn(prefix: str, length: int) -> str:
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


def mobile() -> str:
    return "1" + rng.choice("3456789") + "".join(str(rng.randint(0, 9)) for _ in range(9))


def digits(n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def nanp() -> tuple[str, str, str]:
    return (
        str(rng.randint(2, 9)) + digits(2),
        str(rng.randint(2, 9)) + digits(2),
        digits(4),
    )


def ssn() -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def group(value: str, sizes: list[int], sep: str) -> str:
    out, pos = [], 0
    for size in sizes:
        out.append(value[pos : pos + size])
        pos += size
    if pos < len(value):
        out.append(value[pos:])
    return sep.join(out)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def zero_width(text: str) -> str:
    cut = len(text) // 2
    return text[:cut] + rng.choice(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]) + text[cut:]


NAMES_LOCAL = ["li.na", "zhang.wei", "wang_fang88", "liu.yang", "chen.jing", "j.smith", "mary.lee"]
DOMAINS = ["example.com", "qq.com", "163.com", "gmail.com", "outlook.com", "corp.cn"]
SURNAMES_ZH = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄婷"]
CITIES_ZH = [
    ("北京市", "朝阳区", "建国路"),
    ("上海市", "浦东新区", "世纪大道"),
    ("广州市", "天河区", "体育西路"),
    ("杭州市", "西湖区", "文三路"),
    ("成都市", "武侯区", "人民南路"),
    ("南京市", "鼓楼区", "中山北路"),
]
NAMES_EN = ["John Smith", "Mary Johnson", "David Miller", "Sarah Wilson", "James Brown"]
STREETS_EN = ["Baker Street", "Elm Road", "Maple Avenue", "Oak Lane", "Cedar Drive", "High Street"]
PROVINCES = "京沪粤浙苏川鄂湘"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def email_local() -> str:
    return rng.choice(NAMES_LOCAL) + str(rng.randint(1, 99))


# kind -> format -> a function returning (shown text, [values that must not leak])
Shown = tuple[str, list[str]]
FORMATS: dict[str, dict[str, Callable[[], Shown]]] = {}


def fmt(kind: str, name: str) -> Callable[[Callable[[], Shown]], Callable[[], Shown]]:
    def register(fn: Callable[[], Shown]) -> Callable[[], Shown]:
        FORMATS.setdefault(kind, {})[name] = fn
        return fn

    return register


def one(text: str) -> Shown:
    return text, [text]


for _name, _shape in {
    "plain": lambda v: v,
    "spaced 6-8-4": lambda v: group(v, [6, 8], " "),
    "dotted 4s": lambda v: group(v, [4, 4, 4, 4], "."),
    "slashes": lambda v: group(v, [6, 8], "/"),
    "dashes 2s": lambda v: group(v, [2] * 8, "-"),
    "zero-width": zero_width,
    "full-width": fullwidth,
}.items():
    fmt("id_card", _name)(lambda shape=_shape: one(shape(id_card())))

for _name, _shape in {
    "plain": lambda v: v,
    "3-4-4 spaces": lambda v: group(v, [3, 4], " "),
    "3-4-4 dots": lambda v: group(v, [3, 4], "."),
    "4-4-3 spaces": lambda v: group(v, [4, 4], " "),
    "+86 prefix": lambda v: "+86 " + v,
    "zero-width": zero_width,
    "full-width": fullwidth,
}.items():
    fmt("phone", _name)(lambda shape=_shape: one(shape(mobile())))
fmt("phone", "landline")(
    lambda: one(f"0{rng.choice(['10', '21', '755'])}-{rng.randint(2, 9)}{digits(7)}")
)

fmt("bank_card", "groups of 4")(lambda: one(group(luhn("6217", 19), [4, 4, 4, 4], " ")))
fmt("bank_card", "6-13")(lambda: one(group(luhn("621700", 19), [6], " ")))
fmt("bank_card", "bare 62")(lambda: one(luhn("6222", 16)))
fmt("bank_card", "dotted")(lambda: one(group(luhn("6228", 19), [4, 4, 4, 4], ".")))
fmt("bank_card", "ICBC 9558")(lambda: one(luhn("9558", 19)))
fmt("credit_card", "visa grouped")(lambda: one(group(luhn("4", 16), [4, 4, 4], " ")))
fmt("credit_card", "mastercard bare")(lambda: one(luhn("5" + str(rng.randint(1, 5)), 16)))
fmt("credit_card", "amex 4-6-5")(lambda: one(group(luhn("37", 15), [4, 6], " ")))
fmt("credit_card", "visa dashes")(lambda: one(group(luhn("4", 16), [4, 4, 4], "-")))

fmt("email", "plain")(lambda: one(f"{email_local()}@{rng.choice(DOMAINS)}"))
fmt("email", "spelled at/dot")(
    lambda: one(f"{email_local()} at {rng.choice(DOMAINS).replace('.', ' dot ')}")
)
fmt("email", "brackets")(
    lambda: one(f"{email_local()} [at] {rng.choice(DOMAINS).replace('.', ' [dot] ')}")
)
fmt("email", "ideographic stop")(
    lambda: one(f"{email_local()}@{rng.choice(DOMAINS).replace('.', '。')}")
)
fmt("email", "full-width at")(lambda: one(f"{email_local()}＠{rng.choice(DOMAINS)}"))

fmt("ip_address", "ipv4")(
    lambda: one(
        f"{rng.randint(11, 200)}.{rng.randint(10, 250)}."
        f"{rng.randint(0, 250)}.{rng.randint(10, 250)}"
    )
)
fmt("ip_address", "ipv6")(
    lambda: one(f"2001:db8:{rng.randint(1, 9999):x}::{rng.randint(16, 65535):x}")
)

fmt("passport", "china E")(lambda: one("E" + digits(8)))
fmt("passport", "german keyword")(
    lambda: one(
        rng.choice("CFGHJK")
        + "".join(rng.choice("CFGHJKLMNPRTVWXYZ0123456789") for _ in range(4))
        + digits(4)
    )
)
fmt("passport", "number after keyword")(lambda: one(digits(9)))

fmt("us_ssn", "dashes")(lambda: one(ssn()))
fmt("us_ssn", "spaces")(lambda: one(ssn().replace("-", " ")))
fmt("us_ssn", "no separators")(lambda: one(ssn().replace("-", "")))

fmt("intl_phone", "nanp parens")(lambda: one("({}) {}-{}".format(*nanp())))
fmt("intl_phone", "nanp dots")(lambda: one("{}.{}.{}".format(*nanp())))
fmt("intl_phone", "+1 spaces")(lambda: one("+1 {} {} {}".format(*nanp())))
fmt("intl_phone", "+44")(lambda: one(f"+44 20 {digits(4)} {digits(4)}"))
fmt("intl_phone", "+49")(lambda: one(f"+49 30 {digits(8)}"))

fmt("license_plate", "china dot")(
    lambda: one(f"{rng.choice(PROVINCES)}{rng.choice(PLATE_LETTERS)}·{digits(5)}")
)
fmt("license_plate", "china new energy")(
    lambda: one(f"{rng.choice(PROVINCES)}{rng.choice(PLATE_LETTERS)}D{digits(5)}")
)
fmt("license_plate", "uk keyword")(
    lambda: one(
        f"{rng.choice(PLATE_LETTERS)}{rng.choice(PLATE_LETTERS)}{digits(2)} "
        + "".join(rng.choice(PLATE_LETTERS) for _ in range(3))
    )
)
fmt("license_plate", "german keyword")(
    lambda: one(f"M-{rng.choice(PLATE_LETTERS)}{rng.choice(PLATE_LETTERS)} {digits(4)}")
)

fmt("social_insurance", "社保卡号")(lambda: one(digits(10)))
fmt("social_insurance", "canada SIN")(lambda: one(group(digits(9), [3, 3], " ")))
fmt("social_insurance", "uk NINO")(lambda: one(f"QQ {digits(2)} {digits(2)} {digits(2)} C"))
fmt("medical_record", "病历号")(lambda: one("ZY" + digits(8)))
fmt("medical_record", "MRN")(lambda: one(digits(8)))
fmt("medical_record", "patient id")(lambda: one("P-" + digits(7)))


def zh_address(unit: bool) -> str:
    city, district, road = rng.choice(CITIES_ZH)
    text = f"{city}{district}{road}{rng.randint(1, 999)}号"
    if unit:
        text += f"{rng.randint(1, 9)}单元{rng.randint(101, 2999)}室"
    return text


def en_address(unit: bool) -> str:
    text = f"{rng.randint(1, 999)} {rng.choice(STREETS_EN)}"
    if unit:
        text += f", Apt {rng.randint(1, 30)}{rng.choice('ABCD')}"
    return text


fmt("name_address", "收件人 + address")(
    lambda: (lambda n, a: (f"收件人：{n}，{a}", [n, a]))(rng.choice(SURNAMES_ZH), zh_address(False))
)
fmt("name_address", "name lives at")(
    lambda: (lambda n, a: (f"{n}住在{a}", [n, a]))(rng.choice(SURNAMES_ZH), zh_address(False))
)
fmt("name_address", "home with unit")(lambda: (lambda a: (a, [a]))(zh_address(True)))
fmt("name_address", "english titled")(
    lambda: (lambda n, a: (f"Mr {n}, {a}, London", [n, a]))(rng.choice(NAMES_EN), en_address(False))
)
fmt("name_address", "english apartment")(lambda: (lambda a: (a, [a]))(en_address(True)))

# What goes before a value, by kind (a keyword where the kind needs one).
LEAD: dict[str, list[str]] = {
    "id_card": ["身份证号", "ID number", "证件号码"],
    "phone": ["手机", "联系电话", "mobile"],
    "bank_card": ["转账到", "pay to", "收款"],
    "credit_card": ["信用卡", "card", "charge"],
    "email": ["邮箱", "email", "write to"],
    "ip_address": ["登录IP", "from address", "源地址"],
    "passport": ["护照号", "passport number", "Reisepass"],
    "us_ssn": ["SSN", "social security number", "ssn is"],
    "intl_phone": ["call", "phone", "电话"],
    "license_plate": ["车牌", "licence plate", "Kennzeichen"],
    "social_insurance": ["社保卡号", "SIN", "NINO"],
    "medical_record": ["病历号", "MRN", "patient id"],
    "name_address": ["", "", ""],
}
KEYWORD_FORMATS = {
    ("passport", "german keyword"): "Reisepassnummer",
    ("passport", "number after keyword"): "passport number is",
    ("us_ssn", "no separators"): "my SSN is",
    ("license_plate", "uk keyword"): "licence plate",
    ("license_plate", "german keyword"): "Kennzeichen",
    ("social_insurance", "社保卡号"): "社保卡号：",
    ("social_insurance", "canada SIN"): "my social insurance number is",
    ("social_insurance", "uk NINO"): "NINO",
    ("medical_record", "病历号"): "病历号：",
    ("medical_record", "MRN"): "MRN:",
    ("medical_record", "patient id"): "patient id",
}
TEMPLATES = [
    "请帮我核对一下：{lead} {value}，谢谢。",
    "Please update the record — {lead} {value} — and confirm.",
    "客户资料：{lead} {value}。请写一封确认邮件。",
    "Draft a short reply to a customer whose {lead} is {value}.",
    "{lead} {value}，这个信息要填到表格里吗？",
]


def sentence(kind: str, format_name: str, shown: str, i: int) -> str:
    lead = KEYWORD_FORMATS.get((kind, format_name)) or LEAD[kind][i % 3]
    template = TEMPLATES[i % len(TEMPLATES)]
    if kind in ("passport", "us_ssn", "social_insurance", "medical_record", "license_plate"):
        template = TEMPLATES[i % 2 * 1]  # keep the keyword right before the value
        template = "{lead} {value}. " + ("请核实。" if i % 2 else "Please check it.")
    return template.format(lead=lead, value=shown).strip()


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "MODEL", "messages": [{"role": "user", "content": content}], **extra}


# --- fields: where in the request a value hides --------------------------------------------------


def tool(about: str = "Look up an order.", **param: Any) -> dict[str, Any]:
    prop = {"type": "string", "description": "the order number", **param}
    return {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": about,
            "parameters": {"type": "object", "properties": {"order": prop}},
        },
    }


FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "system": lambda s: {
        "model": "MODEL",
        "messages": [
            {"role": "system", "content": f"Customer on file: {s}"},
            {"role": "user", "content": "请总结客户信息。"},
        ],
    },
    "assistant history": lambda s: {
        "model": "MODEL",
        "messages": [
            {"role": "user", "content": "我的信息记下了吗？"},
            {"role": "assistant", "content": f"已记录：{s}"},
            {"role": "user", "content": "好的，继续。"},
        ],
    },
    "user field": lambda s: chat("hi", user=s),
    "metadata": lambda s: chat("hi", metadata={"customer": s}),
    "tool description": lambda s: chat("查订单", tools=[tool(f"Orders of the customer {s}.")]),
    "parameter description": lambda s: chat("查订单", tools=[tool(description=f"order of {s}")]),
    "parameter default": lambda s: chat("查订单", tools=[tool(default=s)]),
    "response_format schema": lambda s: chat(
        "给我 JSON",
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "reply",
                "schema": {
                    "type": "object",
                    "description": f"about {s}",
                    "properties": {"a": {"type": "string", "examples": [s]}},
                },
            },
        },
    ),
    "message name": lambda s: {
        "model": "MODEL",
        "messages": [{"role": "user", "name": s, "content": "hello"}],
    },
    "refusal part": lambda s: {
        "model": "MODEL",
        "messages": [
            {"role": "user", "content": "继续"},
            {
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": f"I cannot share {s}."}],
            },
            {"role": "user", "content": "ok"},
        ],
    },
    "tool-call arguments": lambda s: {
        "model": "MODEL",
        "messages": [
            {"role": "user", "content": "查订单"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "lookup_order",
                            "arguments": json.dumps({"who": s}, ensure_ascii=False),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "已发货"},
        ],
        "tools": [tool()],
    },
    "tool result": lambda s: {
        "model": "MODEL",
        "messages": [
            {"role": "user", "content": "查订单"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup_order", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f"订单联系人 {s}"},
        ],
        "tools": [tool()],
    },
    "text part": lambda s: chat(
        [{"type": "text", "text": "看这里"}, {"type": "text", "text": f"信息：{s}"}]
    ),
    "stop sequence": lambda s: chat("hi", stop=[f"END {s}"]),
    "split across messages": lambda s: {
        "model": "MODEL",
        "messages": [
            {"role": "user", "content": f"号码前半 {s[: len(s) // 2]}"},
            {"role": "user", "content": f"{s[len(s) // 2 :]} 是后半"},
        ],
    },
}
FIELD_KINDS = ["id_card", "phone", "email", "bank_card", "name_address", "intl_phone"]


def field_value(i: int) -> tuple[str, str, list[str]]:
    kind = FIELD_KINDS[i % len(FIELD_KINDS)]
    if kind == "id_card":
        v = id_card()
        return kind, f"身份证 {v}", [v]
    if kind == "phone":
        v = mobile()
        return kind, f"手机 {v}", [v]
    if kind == "email":
        v = f"{email_local()}@{rng.choice(DOMAINS)}"
        return kind, v, [v]
    if kind == "bank_card":
        v = group(luhn("6217", 19), [4, 4, 4, 4], " ")
        return kind, f"卡号 {v}", [v]
    if kind == "intl_phone":
        v = "({}) {}-{}".format(*nanp())
        return kind, f"phone {v}", [v]
    n, a = rng.choice(SURNAMES_ZH), zh_address(False)
    return kind, f"收件人：{n}，{a}", [n, a]


# --- clean look-alikes ----------------------------------------------------------------------------


def bad_id() -> str:
    v = id_card()
    return v[:-1] + ("0" if v[-1] != "0" else "1")


CLEAN: dict[str, list[Callable[[], str]]] = {
    "id_card": [
        lambda: f"工单号 {bad_id()} 已关闭，请归档。",
        lambda: f"Invoice {digits(20)} was paid on 2024-03-15.",
        lambda: f"批次 {bad_id()[:17]} 的质检报告在哪里？",
    ],
    "phone": [
        lambda: f"订单号 2{digits(10)} 已发货。",
        lambda: f"The build took 138.{digits(2)} seconds on run {digits(4)}.",
        lambda: f"客服热线 400-{digits(3)}-{digits(4)}，工作时间 9:00-18:00。",
    ],
    "bank_card": [
        lambda: f"tracking number {digits(16)} (not a card)",
        lambda: f"物流单号 {digits(4)} {digits(4)} {digits(4)} 已签收。",
        lambda: f"Version 2024.{digits(2)}.{digits(3)} fixes 12 bugs.",
    ],
    "credit_card": [
        lambda: f"参考号 4{digits(3)}-{digits(4)}-{digits(4)}-{digits(3)}X",
        lambda: f"ISBN 978-{digits(1)}-{digits(2)}-{digits(6)}-{digits(1)}",
    ],
    "email": [
        lambda: "Look at example dot com for the pricing page.",
        lambda: "We met at noon. The dot com era was long ago.",
        lambda: "装饰器写成 @dataclass 或 @property 都可以。",
        lambda: "Use the @mention feature in the chat.",
    ],
    "ip_address": [
        lambda: f"Upgrade to version 1.2.{rng.randint(0, 9)}.{rng.randint(0, 9)} today.",
        lambda: "DNS 服务器设置为 8.8.8.8 即可。",
        lambda: "本地回环地址是 127.0.0.1，掩码 255.255.255.0。",
    ],
    "passport": [
        lambda: "护照照片有什么尺寸要求？",
        lambda: "How long does a passport renewal take in 2024?",
        lambda: f"Part number E{digits(9)} is out of stock.",
    ],
    "us_ssn": [
        lambda: f"Call extension 666-{digits(2)}-{digits(4)} is unused.",
        lambda: f"Form 000-{digits(2)}-{digits(4)} is a template.",
        lambda: "What is a social security number used for?",
    ],
    "intl_phone": [
        lambda: f"Score: +{rng.randint(1, 9)} points in round {rng.randint(1, 9)}.",
        lambda: f"会议定在 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} 10:30。",
        lambda: f"The tolerance is ±{rng.randint(1, 9)}.{digits(2)} mm.",
    ],
    "license_plate": [
        lambda: "京东A轮融资的新闻是真的吗？",
        lambda: "How do I change a licence plate light bulb?",
        lambda: "车牌识别系统的准确率一般是多少？",
    ],
    "social_insurance": [
        lambda: f"社保缴纳了{rng.randint(2, 9)}年，可以落户吗？",
        lambda: "How is the social insurance rate calculated?",
        lambda: f"sin(x) = {rng.randint(0, 1)} when x = 0 or pi/2",
    ],
    "medical_record": [
        lambda: "病历号一般在哪里可以查到？",
        lambda: "What does a medical record number look like?",
        lambda: f"Chapter {rng.randint(2, 9)}: medical records since the 1990s.",
    ],
    "name_address": [
        lambda: f"公司地址：北京市海淀区中关村大街{rng.randint(1, 99)}号",
        lambda: "王府井大街1号是一家百货商店吗？",
        lambda: f"Our office is at {rng.randint(1, 99)} Infinite Loop Drive, Cupertino.",
        lambda: "莫言是一位作家，写过很多小说。",
        lambda: f"Apple Inc, {rng.randint(1, 9)} Apple Park Way, Cupertino.",
    ],
}


def main() -> None:
    rows: list[dict[str, Any]] = []
    for kind, formats in FORMATS.items():
        for format_name, make in formats.items():
            for i in range(ROWS_PER_CELL):
                shown, values = make()
                rows.append(
                    {
                        "group": "kind",
                        "kind": kind,
                        "format": format_name,
                        "values": values,
                        "body": chat(sentence(kind, format_name, shown, i)),
                    }
                )
    for field_name, build in FIELDS.items():
        for i in range(ROWS_PER_CELL + 1):
            kind, shown, values = field_value(i)
            if field_name == "split across messages":
                kind, shown = "id_card", id_card()
                values = [shown[: len(shown) // 2], shown[len(shown) // 2 :]]
            rows.append(
                {
                    "group": "field",
                    "kind": kind,
                    "field": field_name,
                    "values": values,
                    "body": build(shown),
                }
            )
    for kind, makers in CLEAN.items():
        for i in range(max(ROWS_PER_CELL, 2 * len(makers))):
            text = makers[i % len(makers)]()
            rows.append({"group": "clean", "kind": kind, "values": [], "body": chat(text)})
    with OUT.open("w", encoding="utf-8") as out:
        for n, row in enumerate(rows):
            out.write(json.dumps({"id": n, **row}, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
