"""Phones beyond mainland mobiles, licence plates, and numbers known only by the word before them.

International (E.164, `+44 20 7946 0958`) and North American (`(415) 555-2671`) phones have a
shape of their own; a Chinese plate (`京A·12345`, `粤B D12345`) too. Social-insurance and
medical-record numbers, other countries' plates and SSNs without separators look like any code,
so they count only after their keyword (`病历号`, `MRN`, `社保卡号`, `licence plate`, `SSN`).
Spans are `(kind, start, end)` on folded text, like the other rules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from thrifty.gateway import _pii_rules as rules

Span = rules.Span

# --- phones --------------------------------------------------------------------------------------

# '+' or 00, a country code, then groups; 8-15 digits in all (E.164). China's mobiles are the
# numeric rule's (`phone`), so +86 1… is skipped here.
_INTERNATIONAL = re.compile(
    r"(?<![0-9A-Za-z])(?:\+|00)(?P<cc>[1-9][0-9]{0,2})"
    r"(?:[ .\-]?\(?[0-9]{1,5}\)?){2,6}(?![0-9])",
    re.ASCII,
)
# Cheap gates, written to start with one character class (the regex engine then skips quickly
# over text): a '+' or a 00 prefix for international numbers, "EEE-NNNN" for North American ones.
_INTERNATIONAL_GATE = re.compile(r"[+0](?:(?<=\+)[1-9]|(?<![0-9A-Za-z]0)(?<=0)0[1-9])", re.ASCII)
# North American: (AAA) EEE-NNNN, AAA-EEE-NNNN, AAA.EEE.NNNN, optionally after 1; area and
# exchange never start with 0 or 1, and N00 area codes are toll-free lines (businesses). Plain
# spaces (415 555 2671) count only after a phone word.
_NANP = re.compile(
    r"(?<![0-9A-Za-z.\-])(?:1[ .\-]?)?(?:\((?!.00)[2-9][0-9]{2}\)[ .\-]?|(?!.00)[2-9][0-9]{2}[.\-])"
    r"[2-9][0-9]{2}[.\- ][0-9]{4}(?![0-9])",
    re.ASCII,
)
_NANP_GATE = re.compile(r"[0-9](?<=[2-9])[0-9]{2}[.\- ][0-9]{4}(?![0-9])", re.ASCII)
# Mainland landlines: area code 0AA or 0AAA, a dash, 7 or 8 digits (010-12345678).
_LANDLINE = re.compile(
    r"[(0](?<![0-9A-Za-z.\-].)(?:(?<=\()0[1-9][0-9]{1,2}\)|(?<=0)[1-9][0-9]{1,2}-)"
    r"[ ]?[2-9][0-9]{2,3}[ \-]?[0-9]{4}(?![0-9])",
    re.ASCII,
)
# Words a phone number follows; lower-case ones are matched in lower-cased text.
_PHONE_WORDS = (
    *("phone", "telephone", "tel", "mobile", "cell", "cellphone", "call", "fax", "whatsapp"),
    *("telefon", "handy", "电话", "手机", "致电", "联系方式"),
)
# Possessive (`{0,12}+`): the filler never takes what a value starts with, so it never needs to
# give anything back, and a miss fails at once instead of trying every shorter filler.
_BY_PHONE_WORD = re.compile(
    r"(?:[^0-9A-Za-z\n+(]|(?i:\b(?:number|no|me|us|him|her|is|at|on)\b)){0,12}+"
    r"(?P<value>\+?\(?[0-9][0-9 ().\-]{5,18}[0-9])(?![0-9])"
)
_DATE = re.compile(r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[:.][0-9]{2}(?![0-9])")
_MOBILE = re.compile(r"(?:86)?1[3-9][0-9]{9}")


# --- keywords: one pass over the lower-cased text for every family -------------------------------

PHONE_WORDS = "phone"
PLATE_WORDS = "plate"
PASSPORT_WORDS = "passport"
ID_WORDS = "id card"
_ID_WORDS = (
    *("身份证", "身份证号", "身份证号码", "居民身份证", "证件号", "证件号码"),
    *("id card", "identity card", "id number", "identity number"),
)
_PASSPORT_WORDS = ("passport", "护照", "reisepass", "passeport", "pasaporte", "旅券")
# German compounds go on after the word (Reisepassnummer, Kennzeichenangabe).
_COMPOUNDS = frozenset({"reisepass", "kennzeichen", "passeport"})


@functools.cache
def _keyword_pattern() -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    """One alternation of every keyword (lower-cased), and for each: (family, as written).

    A pattern of plain literals lets the engine skip quickly to a possible first character; a
    `str.find` per word cost about 40 scans of the text.
    """
    families = {
        PHONE_WORDS: _PHONE_WORDS,
        PLATE_WORDS: _PLATE_WORDS,
        PASSPORT_WORDS: _PASSPORT_WORDS,
        ID_WORDS: _ID_WORDS,
        **{kind: words for kind, words in _KEYWORDS},
    }
    by_word = {word.lower(): (family, word) for family, words in families.items() for word in words}
    return re.compile(_trie(sorted(by_word))), by_word


def _trie(words: list[str]) -> str:
    """A regex matching the longest of `words` with common prefixes shared (p(?:hone|late|…)).

    The engine then tests one branch per first character instead of every word: 2-3x faster
    than a flat alternation on English text.
    """
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here, and longer ones go on
            return f"(?:{body})?"
        return body

    return build(root)


def keyword_hits(folded: str, low: str) -> dict[str, list[int]]:
    """For each keyword family present, the end offsets of its whole-word occurrences.

    `low` is `folded.lower()` (same length: the text is folded ASCII or CJK). A keyword not all
    lower-case (SIN, MRN) counts only as written.
    """
    pattern, by_word = _keyword_pattern()
    hits: dict[str, list[int]] = {}
    for match in pattern.finditer(low):
        word = match.group()
        family, written = by_word[word]
        start, end = match.span()
        if word.isascii():
            if start > 0 and low[start - 1].isalpha():
                continue
            glued = end < len(low) and low[end].isalpha() and word not in _COMPOUNDS
            plural = (
                glued and low[end] == "s" and (end + 1 == len(low) or not low[end + 1].isalpha())
            )
            if glued and not plural:
                continue
            if written != word and folded[start:end] != written:
                continue
        hits.setdefault(family, []).append(end)
    return hits


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def iter_phones(folded: str, kinds: frozenset[str], hits: dict[str, list[int]]) -> Iterator[Span]:
    if rules.INTL_PHONE in kinds:
        for gate in _INTERNATIONAL_GATE.finditer(folded):
            match = _INTERNATIONAL.match(folded, gate.start())
            if match is None:
                continue
            digits = _digits(match.group())
            if match.group()[0] == "0":
                if match.group().isdigit():  # 00 then a run of digits: any long number
                    continue
                digits = digits[2:]
            if not 8 <= len(digits) <= 15:
                continue
            if digits.startswith("86") and digits[2:3] == "1":
                continue  # a mainland mobile: `phone`
            yield rules.INTL_PHONE, match.start(), match.end()
        for gate in _NANP_GATE.finditer(folded):
            # the area code and a leading 1 are at most 8 characters before the exchange
            match = _NANP.search(folded, max(0, gate.start() - 9), gate.end())
            if match is not None:
                yield rules.INTL_PHONE, match.start(), match.end()
        for end in hits.get(PHONE_WORDS, ()):
            value = _BY_PHONE_WORD.match(folded, end)
            if value is None or _DATE.search(value.group("value")):
                continue
            digits = _digits(value.group("value"))
            # a mainland mobile or landline is `phone`, found by its own rule
            mainland = _MOBILE.fullmatch(digits) or _LANDLINE.fullmatch(value.group("value"))
            if 7 <= len(digits) <= 15 and not (rules.PHONE in kinds and mainland):
                yield rules.INTL_PHONE, value.start("value"), value.end("value")
    if rules.PHONE in kinds:
        for match in _LANDLINE.finditer(folded):
            yield rules.PHONE, match.start(), match.end()


# --- the 15-digit IDs of before 1999, after their keyword ----------------------------------------


def iter_old_ids(folded: str, ends: list[int]) -> Iterator[Span]:
    for end in ends:
        value = _OLD_ID.match(folded, end)
        if value is not None and rules.old_id_card_ok(_digits(value.group("value"))):
            yield rules.ID_CARD, value.start("value"), value.end("value")


# --- licence plates ------------------------------------------------------------------------------

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Province, issuing office letter, optional separator, then 5 characters (6 for new-energy cars),
# letters I and O never used; the last may be 挂/学/警/港/澳 instead.
_CN_PLATE = re.compile(
    f"[{_PROVINCES}]"
    r"[A-HJ-NP-Z][ ·•・\-]?(?P<tail>[A-HJ-NP-Z0-9]{4,5}[A-HJ-NP-Z0-9挂学警港澳])(?![A-Za-z0-9])"
)
_PLATE_WORDS = (
    *("plate", "plates", "kennzeichen", "immatriculation", "matricula", "matrícula", "车牌"),
    *("registration number", "registration no", "reg no", "rego"),
)
_FILLER = (
    r"(?:[^0-9A-Za-z\n]|\b(?:[Nn]umber|[Nn]o|[Nn]um|[Nn]r|[Ii][Dd]|[Cc]ode|is|was|of|reads)\b)"
    r"{0,8}+"
)
_OLD_ID = re.compile(
    _FILLER + r"(?:[是为]\s*)?(?P<value>[0-9]{6}[ -]?[0-9]{6}[ -]?[0-9]{3})(?![0-9A-Za-z])"
)
_PLATE_VALUE = re.compile(_FILLER + r"(?P<value>[A-Z0-9][A-Z0-9 \-·]{2,9}[A-Z0-9])(?![A-Za-z0-9])")


def iter_plates(folded: str, hits: dict[str, list[int]]) -> Iterator[Span]:
    for match in _CN_PLATE.finditer(folded):
        if any(c.isdigit() for c in match.group("tail")):
            yield rules.LICENSE_PLATE, match.start(), match.end()
    for end in hits.get(PLATE_WORDS, ()):
        value = _PLATE_VALUE.match(folded, end)
        if value is not None:
            text = value.group("value")
            if any(c.isdigit() for c in text) and any(c.isalpha() for c in text):
                yield rules.LICENSE_PLATE, value.start("value"), value.end("value")


# --- numbers after their keyword ------------------------------------------------------------------

# Lower-case words are matched in lower-cased text; acronyms (SIN, MRN) only as written.
_KEYWORDS = (
    (
        rules.SOCIAL_INSURANCE,
        (
            *("社保卡号", "社保号", "社保编号", "社保账号", "社会保障号", "社会保障卡号"),
            *("医保卡号", "医保号", "social insurance", "national insurance", "ni number"),
            *("sozialversicherungsnummer", "sécurité sociale", "securite sociale", "SIN", "NINO"),
        ),
    ),
    (
        rules.MEDICAL_RECORD,
        (
            *(
                "病历号",
                "病历编号",
                "病案号",
                "住院号",
                "门诊号",
                "就诊卡号",
                "就诊号",
                "医疗记录号",
            ),
            *("medical record", "patient id", "patient number", "patient no", "MRN"),
            *("hospital number", "chart number", "chart no"),
        ),
    ),
    (rules.US_SSN, ("ssn", "social security")),
)
_KEYED_VALUE = re.compile(
    _FILLER + r"(?:[是为]\s*)?"
    r"(?P<value>[A-Z0-9](?:[A-Z0-9]|[ \-/.](?=[A-Z0-9])){3,24})(?![A-Za-z0-9])",
)


def iter_keyed(folded: str, kinds: frozenset[str], hits: dict[str, list[int]]) -> Iterator[Span]:
    for kind, _ in _KEYWORDS:
        if kind not in kinds:
            continue
        for end in hits.get(kind, ()):
            value = _KEYED_VALUE.match(folded, end)
            if value is None:
                continue
            digits = _digits(value.group("value"))
            if kind == rules.US_SSN and not (
                len(digits) == 9 and rules.ssn_ok(f"{digits[:3]}-{digits[3:5]}-{digits[5:]}")
            ):
                continue
            if len(digits) >= 4:
                yield kind, value.start("value"), value.end("value")
