"""The patterns and validators behind `thrifty.gateway.pii`.

Everything here works on *folded* text: full-width forms already translated 1:1 to ASCII, so an
offset in folded text is the same offset in the original. Each `iter_*` function yields raw
`(kind, start, end)` spans; `pii.PIIDetector` merges them.

Speed comes from the shape of the numeric pattern (see `numeric_pattern`): CPython's regex
engine only skips quickly over text when a pattern starts with one character class, so every
numeric kind is written as "first character" + "rest", and the rest re-checks the first
character with a one-character lookbehind. Validators (checksums, dates, ranges) run only on the
few candidates the pattern yields.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

ID_CARD = "id_card"
PHONE = "phone"
BANK_CARD = "bank_card"
CREDIT_CARD = "credit_card"
EMAIL = "email"
IP_ADDRESS = "ip_address"
PASSPORT = "passport"
US_SSN = "us_ssn"
INTL_PHONE = "intl_phone"
LICENSE_PLATE = "license_plate"
SOCIAL_INSURANCE = "social_insurance"
MEDICAL_RECORD = "medical_record"
NAME_ADDRESS = "name_address"

ALL_KINDS = frozenset(
    {ID_CARD, PHONE, BANK_CARD, CREDIT_CARD, EMAIL, IP_ADDRESS, PASSPORT, US_SSN}
    | {INTL_PHONE, LICENSE_PLATE, SOCIAL_INSURANCE, MEDICAL_RECORD, NAME_ADDRESS}
)
CARD_KINDS = frozenset({BANK_CARD, CREDIT_CARD})

Span = tuple[str, int, int]  # (kind, start, end) in folded == original offsets

# --- the scan's deadline -------------------------------------------------------------------------

# Set by the request scan (`pii_request.scan_request`) for its duration: the loops that can run
# long on one text (digit groups, addresses) check it, so a single long string cannot hold the
# event loop past `privacy.scan_timeout_ms` (a late scan keeps the request off clouds).
DEADLINE: ContextVar[float | None] = ContextVar("thrifty_pii_deadline", default=None)


class ScanTimeout(Exception):
    """The scan ran past its deadline (the request is then kept off clouds)."""


def check_deadline() -> None:
    deadline = DEADLINE.get()
    if deadline is not None and time.perf_counter() > deadline:
        raise ScanTimeout


# --- full-width folding --------------------------------------------------------------------------

# Every other character that is a digit 0-9 (Unicode 14's Nd, and the superscript and
# subscript digits): other scripts' digits (Arabic-Indic ١٣٨, Devanagari १३८), mathematical
# ones (𝟏𝟑𝟖). A model reads them as digits, so the scan must too. Not the enclosed ones
# (①, ⑴, ⒈, ❶, 🄁): they number lists, and "①13812345678" folded would hide the phone in a
# longer number. Runs of (first code point, its digit, length).
# fmt: off
_OTHER_DIGITS = (
    (0x00B2, 2, 2), (0x00B9, 1, 1), (0x0660, 0, 10), (0x06F0, 0, 10), (0x07C0, 0, 10),
    (0x0966, 0, 10), (0x09E6, 0, 10), (0x0A66, 0, 10), (0x0AE6, 0, 10), (0x0B66, 0, 10),
    (0x0BE6, 0, 10), (0x0C66, 0, 10), (0x0CE6, 0, 10), (0x0D66, 0, 10), (0x0DE6, 0, 10),
    (0x0E50, 0, 10), (0x0ED0, 0, 10), (0x0F20, 0, 10), (0x1040, 0, 10), (0x1090, 0, 10),
    (0x1369, 1, 9), (0x17E0, 0, 10), (0x1810, 0, 10), (0x1946, 0, 10), (0x19D0, 0, 10),
    (0x19DA, 1, 1), (0x1A80, 0, 10), (0x1A90, 0, 10), (0x1B50, 0, 10), (0x1BB0, 0, 10),
    (0x1C40, 0, 10), (0x1C50, 0, 10), (0x2070, 0, 1), (0x2074, 4, 6), (0x2080, 0, 10),
    (0xA620, 0, 10), (0xA8D0, 0, 10), (0xA900, 0, 10), (0xA9D0, 0, 10), (0xA9F0, 0, 10),
    (0xAA50, 0, 10), (0xABF0, 0, 10), (0x104A0, 0, 10), (0x10A40, 1, 4), (0x10D30, 0, 10),
    (0x10E60, 1, 9), (0x11052, 1, 9), (0x11066, 0, 10), (0x110F0, 0, 10), (0x11136, 0, 10),
    (0x111D0, 0, 10), (0x112F0, 0, 10), (0x11450, 0, 10), (0x114D0, 0, 10), (0x11650, 0, 10),
    (0x116C0, 0, 10), (0x11730, 0, 10), (0x118E0, 0, 10), (0x11950, 0, 10), (0x11C50, 0, 10),
    (0x11D50, 0, 10), (0x11DA0, 0, 10), (0x16A60, 0, 10), (0x16AC0, 0, 10), (0x16B50, 0, 10),
    (0x1D7CE, 0, 10), (0x1D7D8, 0, 10), (0x1D7E2, 0, 10), (0x1D7EC, 0, 10), (0x1D7F6, 0, 10),
    (0x1E140, 0, 10), (0x1E2F0, 0, 10), (0x1E950, 0, 10), (0x1FBF0, 0, 10),
)
# fmt: on
# U+FF01..U+FF5E are the full-width twins of ASCII 0x21..0x7E; U+3000 is the ideographic space.
_FULLWIDTH_TABLE = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {
    0x3000: 0x20,
    0xFE6B: 0x40,  # small commercial at
    0xFF61: 0x2E,  # half-width ideographic full stop
}
_FULLWIDTH_TABLE |= {
    start + i: 0x30 + digit + i for start, digit, count in _OTHER_DIGITS for i in range(count)
}
# Folding is worth its cost (it is slow on CJK text) only when a full-width digit, letter, '@',
# '+' or '-', or another script's digit is present: the rest of full-width punctuation (，：？ in
# every Chinese prompt) cannot be part of PII.
_FULLWIDTH_SIGNIFICANT = re.compile(
    "[\uff0b\uff0d\uff0e\uff0f\uff10-\uff19\uff20-\uff3a\uff41-\uff5a\ufe6b\uff61"
    + "".join(f"{chr(s)}-{chr(s + n - 1)}" for s, _, n in _OTHER_DIGITS)
    + "]"
)


def fold_fullwidth(text: str) -> str:
    """Translate full-width ASCII forms, and every script's digits, to ASCII, keeping every
    offset (a 1:1 mapping)."""
    if text.isascii() or _FULLWIDTH_SIGNIFICANT.search(text) is None:
        return text
    return text.translate(_FULLWIDTH_TABLE)


# Every kind but a spelled-out email needs a digit (email needs '@', IPv6 ':'), so text without
# these has none of them.
_TRIGGER = re.compile("[0-9@:]")


def may_contain_pii(folded: str) -> bool:
    return _TRIGGER.search(folded) is not None


# --- the numeric pattern -------------------------------------------------------------------------

_MOBILE_TAIL = r"[3-9][0-9][ -]?[0-9]{4}[ -]?[0-9]{4}"  # a mainland mobile after its leading 1
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"


@dataclass(frozen=True, slots=True)
class _Alternative:
    group: str  # regex group name; also picks the classifier
    kinds: frozenset[str]  # compiled in when any of these kinds is enabled
    first: str  # body of the character class the candidate starts with
    rest: str  # the remainder; it starts with a lookbehind that pins the first character


# Order matters: at one start position the first alternative that matches (boundaries included)
# wins, and a candidate its validator rejects is retried one character later.
_ALTERNATIVES = (
    _Alternative("ssn", frozenset({US_SSN}), "0-9", r"(?<=[0-9])[0-9]{2}[- ][0-9]{2}[- ][0-9]{4}"),
    # +86 / 0086 / 86 / (+86) country prefixes, then a mobile number.
    _Alternative(
        "phone_cc",
        frozenset({PHONE}),
        "+(08",
        r"(?:(?<=\()\+?86\)|(?<=\+)86|(?<=0)086|(?<=8)6)[ -]?1" + _MOBILE_TAIL,
    ),
    _Alternative("phone", frozenset({PHONE}), "1", r"(?<=1)" + _MOBILE_TAIL),
    # 6-8-4: region, birth date YYYYMMDD, sequence + check character; spaces or dashes between.
    _Alternative(
        "id_card",
        frozenset({ID_CARD}),
        "1-9",
        r"(?<=[1-9])[0-9]{5}[ -]?(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
        r"[ -]?[0-9]{3}[0-9Xx]",
    ),
    # 4-4-4-4(-1..3) groups, or Amex's 4-6-5. A short fifth group followed by more groups is
    # the start of the next number (… 7890 138 1234 5678), not the card's tail.
    _Alternative(
        "card_grouped",
        CARD_KINDS,
        "0-9",
        r"(?<=[0-9])(?:[0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -][0-9]{1,3}(?![ -][0-9]))?"
        r"|[0-9]{3}[ -][0-9]{6}[ -][0-9]{5})",
    ),
    _Alternative("card_run", CARD_KINDS, "0-9", r"(?<=[0-9])[0-9]{14,18}"),
    # The first octet is checked by `ipv4_ok`; a 'v' just before means a version (v1.2.3.4).
    _Alternative(
        "ipv4",
        frozenset({IP_ADDRESS}),
        "0-9",
        r"(?<=[0-9])(?<![vV].)[0-9]{0,2}(?:\." + _OCTET + "){3}",
    ),
    # Chinese passports: E/G/D/S/P + 8 digits, or E + letter (no I/O) + 7 digits; letters
    # around it mean a longer code (a part number), not a passport.
    _Alternative(
        "passport",
        frozenset({PASSPORT}),
        "EGDSP",
        r"(?<![A-Za-z].)(?:(?<=[EGDSP])[0-9]{8}|(?<=E)[A-HJ-NP-Z][0-9]{7})(?![A-Za-z])",
    ),
)

# Digit-run boundaries: a number is never part of a longer run of digits, and a '.' between
# digits continues a run (decimals, versions, addresses). The leading checks run after the first
# character is consumed, hence the extra `.`.
_LEADING = r"(?<![0-9].)(?<![0-9]\..)"
_TRAILING = r"(?![0-9])(?!\.[0-9])"
# Every alternative's rest starts with at least six of these characters; checking that first
# turns away short numbers (35%, 10:30, 2024年) before eight alternatives are tried on them.
_LONG_ENOUGH = r"(?=[0-9A-Z .()+\-]{6})"


@lru_cache(maxsize=32)
def numeric_pattern(kinds: frozenset[str]) -> re.Pattern[str] | None:
    """The one combined pattern for the digit-bearing kinds among `kinds` (None if none)."""
    chosen = [alt for alt in _ALTERNATIVES if alt.kinds & kinds]
    if not chosen:
        return None
    first = "".join(dict.fromkeys(alt.first for alt in chosen))
    body = "|".join(f"(?P<{alt.group}>{alt.rest})" for alt in chosen)
    return re.compile(f"[{first}]{_LONG_ENOUGH}{_LEADING}(?:{body}){_TRAILING}", re.ASCII)


def iter_numeric(pattern: re.Pattern[str], folded: str, kinds: frozenset[str]) -> Iterator[Span]:
    """Spans of the digit-bearing kinds: candidates from `pattern` that their validator accepts."""
    pos = 0
    while (match := pattern.search(folded, pos)) is not None:
        span = _classify(match, folded, kinds)
        if span is None:
            pos = match.start() + 1  # so no rejected candidate can hide one that overlaps it
            continue
        yield span
        pos = span[2]


def _classify(match: re.Match[str], folded: str, kinds: frozenset[str]) -> Span | None:
    group, raw, start = match.lastgroup, match.group(), match.start()
    if group == "card_grouped":
        return _grouped_card(raw, start, folded, kinds)
    kind: str | None
    if group in ("phone", "phone_cc"):
        kind = PHONE
    elif group == "passport":
        kind = PASSPORT
    elif group == "ssn":
        kind = US_SSN if ssn_ok(raw) else None
    elif group == "ipv4":
        kind = IP_ADDRESS if ipv4_ok(raw) else None
    elif group == "id_card":
        chars = _strip_separators(raw)
        kind = ID_CARD if id_card_ok(chars) else None
        if kind is None and chars.isdigit() and chars == raw:  # 18 plain digits: maybe a card
            kind = card_kind(chars, grouped=False, before=_before(folded, start), kinds=kinds)
    else:  # card_run
        kind = card_kind(raw, grouped=False, before=_before(folded, start), kinds=kinds)
    return None if kind is None else (kind, start, match.end())


_FOUR_GROUPS = len("dddd dddd dddd dddd")


def _grouped_card(raw: str, start: int, folded: str, kinds: frozenset[str]) -> Span | None:
    """Groups of four; a short fifth group may be the next number's (`… 7890 138 1234 5678`)."""
    before = _before(folded, start)
    kind = card_kind(_strip_separators(raw), grouped=True, before=before, kinds=kinds)
    if kind is None and len(raw) > _FOUR_GROUPS:
        raw = raw[:_FOUR_GROUPS]
        kind = card_kind(_strip_separators(raw), grouped=True, before=before, kinds=kinds)
    return None if kind is None else (kind, start, start + len(raw))


def _strip_separators(raw: str) -> str:
    return raw.replace(" ", "").replace("-", "")


def _before(folded: str, start: int, width: int = 16) -> str:
    return folded[max(0, start - width) : start]


# --- validators ----------------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: check character for (weighted sum % 11)
# First two digits of a resident ID: provinces (11-65), Taiwan 71, Hong Kong 81, Macau 82,
# Taiwan residents 83, permanent-resident foreigners 91.
_ID_REGIONS = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
)


def id_card_ok(chars: str) -> bool:
    """An 18-character PRC resident ID: known region, valid check character, plausible birth."""
    if len(chars) != 18 or int(chars[:2]) not in _ID_REGIONS:
        return False
    total = sum(map(operator.mul, map(int, chars[:17]), _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != chars[17].upper():
        return False
    return _plausible_birth(int(chars[6:10]), int(chars[10:12]), int(chars[12:14]))


def old_id_card_ok(digits: str) -> bool:
    """A 15-digit resident ID of before 1999 (region, YYMMDD born in the 1900s, 3 digits; no
    check character, so it is looked for only after an ID keyword)."""
    if len(digits) != 15 or int(digits[:2]) not in _ID_REGIONS:
        return False
    return _plausible_birth(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12]))


def _plausible_birth(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:  # 30 February and the like
        return False
    return date(1900, 1, 1) <= born <= date.today()


def ssn_ok(raw: str) -> bool:
    """AAA-GG-SSSS outside the ranges the SSA never issues (000, 666, 9xx; 00; 0000)."""
    area, group, serial = raw.replace(" ", "-").split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def ipv4_ok(raw: str) -> bool:
    """A host address that can point at a person's machine.

    Not 0.x, loopback, multicast/reserved/netmasks (224 and up), and not all-single-digit
    addresses: those are section numbers (1.2.3.4), versions or public resolvers (8.8.8.8).
    """
    octets = raw.split(".")
    first = octets[0]
    if len(first) > 1 and first[0] == "0":
        return False
    lead = int(first)
    if lead == 0 or lead == 127 or lead >= 224:
        return False
    return any(len(octet) > 1 for octet in octets)


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # a digit doubled, its two digits added


def luhn_ok(digits: str) -> bool:
    # from the right: every other digit as it is, the ones between doubled (loops in C)
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(map(_DOUBLED.__getitem__, map(int, digits[-2::-2])))
    return (kept + doubled) % 10 == 0


def credit_scheme(digits: str) -> bool:
    """Whether the number's prefix and length belong to Visa, Mastercard, Amex or JCB."""
    length = len(digits)
    head2, head4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return length in (16, 19)
    if 51 <= head2 <= 55 or 2221 <= head4 <= 2720:
        return length == 16
    if head2 in (34, 37):
        return length == 15
    return 3528 <= head4 <= 3589 and 16 <= length <= 19


# UnionPay (62) and the ranges Chinese banks co-issue with Discover (60, 65).
# 9558/9559: ICBC and ABC's 19-digit domestic debit cards.
_BANK_PREFIXES = ("62", "60", "65", "9558", "9559")
_CARD_WORDS = re.compile(r"卡|账号|帐号|账户|(?i:card|account|acct)")


def card_kind(digits: str, *, grouped: bool, before: str, kinds: frozenset[str]) -> str | None:
    """`credit_card`, `bank_card` or None for a 15-19 digit candidate.

    A credit-scheme number is `credit_card` when that kind is enabled, else `bank_card` (every
    credit card is a bank card, so a detector asked only for bank cards still finds it). Any
    other Luhn-valid number is a `bank_card` when something says so: groups of four, a bank
    prefix, or a card word just before it; a bare 16-19 digit run is too often an order number.
    """
    if not luhn_ok(digits):
        return None
    if credit_scheme(digits):
        if CREDIT_CARD in kinds:
            return CREDIT_CARD
        return BANK_CARD if BANK_CARD in kinds else None
    if BANK_CARD not in kinds or len(digits) < 16:
        return None
    if grouped or digits.startswith(_BANK_PREFIXES) or _CARD_WORDS.search(before):
        return BANK_CARD
    return None


# --- email, IPv6, passport by keyword ------------------------------------------------------------

# Anchored at '@' (a literal prefix the engine finds fast); the local part is walked back by hand.
_EMAIL_DOMAIN = re.compile(
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])", re.ASCII
)
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def iter_emails(folded: str) -> Iterator[Span]:
    for match in _EMAIL_DOMAIN.finditer(folded):
        at = match.start()
        start = at
        while start > 0 and folded[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < at and folded[start] == ".":  # "...see above.john@x.com"
            start += 1
        if start < at:
            yield EMAIL, start, match.end()


# Every IPv6 address has two colons at most four hex digits apart (a literal ':' first, so the
# engine finds it fast); clock times (10:30) and prose colons ("Note: ...") do not.
_IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def iter_ipv6(folded: str) -> Iterator[Span]:
    """Grow each gate hit to its whole run of hex digits, ':' and '.'; `ipaddress` judges it."""
    pos = 0
    while (hit := _IPV6_GATE.search(folded, pos)) is not None:
        start = hit.start()
        while start > 0 and folded[start - 1] in _IPV6_CHARS:
            start -= 1
        end = hit.end()
        while end < len(folded) and folded[end] in _IPV6_CHARS:
            end += 1
        pos = end
        while end > start and folded[end - 1] == ".":  # a full stop after the address
            end -= 1
        if _glued_to_word(folded, start, end):  # std::vector, Foo::bad in code
            continue
        if ipv6_ok(folded[start:end]):
            yield IP_ADDRESS, start, end


def _glued_to_word(text: str, start: int, end: int) -> bool:
    return (start > 0 and text[start - 1] in _WORD_CHARS) or (
        end < len(text) and text[end] in _WORD_CHARS
    )


def ipv6_ok(candidate: str) -> bool:
    """A valid IPv6 address with a digit in it, other than :: and ::1."""
    if candidate.count(":") < 2 or not any(c.isdigit() for c in candidate):
        return False
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


# Other countries' passports look like any number (or, like Germany's, any code of letters and
# digits), so they need the word before them (found by `_pii_keyed.keyword_hits`).
_PASSPORT_VALUE = re.compile(
    r"[^0-9\n]{0,24}?(?<![0-9A-Za-z])(?P<value>[A-Z0-9]{6,10})(?![0-9A-Za-z])", re.ASCII
)


def iter_passport_after(folded: str, ends: list[int]) -> Iterator[Span]:
    for end in ends:
        match = _PASSPORT_VALUE.match(folded, end)
        if match is None:
            continue
        value = match.group("value")
        # a number (most countries), or letters and digits with digits in the majority (Germany's
        # C01X00T47); a word in capitals after "passport" is not one
        if sum(c.isdigit() for c in value) * 2 > len(value):
            yield PASSPORT, match.start("value"), match.end("value")
