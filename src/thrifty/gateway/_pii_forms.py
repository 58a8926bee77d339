"""Reformatted values: invisible characters, digit groups split any way, spelled-out emails.

A value written to slip past a pattern (`1101.0519.9003.0712.39`, `138 1234 5678` with a
zero-width space inside, `li.na at example dot com`, `li.na@example。com`) is still the value.
These passes run on folded text (see `_pii_rules.fold_fullwidth`) and yield `(kind, start, end)`
spans like the other rules; `strip_format` is the one step that changes offsets, so it returns
the map back to the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from thrifty.gateway import _pii_rules as rules

Span = rules.Span

# --- invisible characters ------------------------------------------------------------------------

# Zero-width and other format characters (Unicode Cf) a value can carry without changing how it
# looks: soft hyphen, Arabic letter mark, Mongolian vowel separator, ZWSP..RLM, bidi embeddings,
# word joiner..invisible plus, bidi isolates, BOM, interlinear annotation marks.
_FORMAT_CHARS = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]+"
)


def strip_format(text: str) -> tuple[str, list[int] | None]:
    """`text` without format characters, and for each kept character its original offset.

    The map is None (identity) when nothing was removed: the common case costs one search.
    """
    if text.isascii() or _FORMAT_CHARS.search(text) is None:
        return text, None
    kept: list[str] = []
    index: list[int] = []
    pos = 0
    for match in _FORMAT_CHARS.finditer(text):
        kept.append(text[pos : match.start()])
        index.extend(range(pos, match.start()))
        pos = match.end()
    kept.append(text[pos:])
    index.extend(range(pos, len(text)))
    index.append(len(text))  # the end offset of a span that runs to the end
    return "".join(kept), index


def map_span(span: Span, index: list[int] | None) -> Span:
    """A span in stripped text as a span of the original (format characters inside included)."""
    if index is None:
        return span
    kind, start, end = span
    return kind, index[start], index[end - 1] + 1


# --- digit groups joined across separators --------------------------------------------------------

# A run of digit groups with a separator between each: space, dot, dash, slash, underscore, the
# middle dot, or a few of them. The last group may end in the ID card's X.
_GROUP_RUN = re.compile(
    r"[0-9](?<![0-9A-Za-z.].)[0-9]{0,18}(?:[ .\-/_\u00b7]{1,3}[0-9]{1,19}){1,18}[Xx]?"
    r"(?![0-9A-Za-z])",
    re.ASCII,
)
_GROUP = re.compile(r"[0-9]+[Xx]?")
_NOT_DIGITS = str.maketrans("", "", " .-/_\u00b7")  # fewer than 9 digits: no kind is that short
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_IPV4_SHAPE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def iter_joined_digits(folded: str, kinds: frozenset[str]) -> Iterator[Span]:
    """IDs, mobiles, cards and SSNs whose digits are split into groups of any size."""
    for run in _GROUP_RUN.finditer(folded):
        rules.check_deadline()  # a text of a million digit groups is a million runs
        raw = run.group()
        if len(raw.translate(_NOT_DIGITS)) < 9 or _IPV4_SHAPE.fullmatch(
            raw
        ):  # an address (the IP rule's to judge), not a number
            continue
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _GROUP.finditer(raw)]
        yield from _windows(folded, groups, kinds)


# Lengths some kind has: SSN 9, mobile 11, cards 15-19, ID 18.
_LENGTHS = frozenset({9, 11, 15, 16, 17, 18, 19})


def _windows(folded: str, groups: list[tuple[int, int]], kinds: frozenset[str]) -> Iterator[Span]:
    """Every stretch of two or more consecutive groups whose digits make a kind."""
    pieces = [folded[start:end] for start, end in groups]
    sizes = [len(piece) for piece in pieces]
    count = len(groups)
    for first in range(count):
        length = sizes[first]
        few = length  # the smallest group in the stretch
        digits = pieces[first]
        x_inside = False  # an X before the stretch's last group: no kind has one there
        for last in range(first + 1, count):
            size = sizes[last]
            length += size
            if length > 19:
                break
            few = min(few, size)
            x_inside = x_inside or digits[-1] in "Xx"
            digits += pieces[last]
            if length not in _LENGTHS or x_inside:
                continue
            start = groups[first][0]
            stretch = sizes[first : last + 1]
            kind = _judge(digits, stretch, few, folded, start, kinds, last < count - 1)
            if kind is not None:
                yield kind, start, groups[last][1]


def _judge(
    digits: str,
    sizes: list[int],
    few: int,
    folded: str,
    start: int,
    kinds: frozenset[str],
    followed: bool,
) -> str | None:
    """The kind of joined digits, or None. Group sizes keep tables of small numbers out."""
    length = len(digits)
    # digit by digit (1 3 8 …), or groups of a few digits each as people write them
    spelled = max(sizes) == 1
    if (
        length == 18
        and rules.ID_CARD in kinds
        and (spelled or few >= 2)
        and rules.id_card_ok(digits)
    ):
        return rules.ID_CARD
    if digits[-1] in "Xx":
        return None
    if (
        length == 11
        and rules.PHONE in kinds
        and (spelled or few >= 3)
        and _MOBILE.fullmatch(digits)
    ):
        return rules.PHONE
    ssn = f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
    if length == 9 and rules.US_SSN in kinds and sizes == [3, 2, 4] and rules.ssn_ok(ssn):
        return rules.US_SSN
    # a short last group with more groups after it starts the next number (… 7894 138 1234 5678)
    short_tail = followed and sizes[-1] < 4 and not spelled
    if (
        15 <= length <= 19
        and kinds & rules.CARD_KINDS
        and not short_tail
        and (spelled or min(sizes) >= 3)
    ):
        before = folded[max(0, start - 16) : start]
        return rules.card_kind(digits, grouped=few >= 4, before=before, kinds=kinds)
    return None


# --- emails written to dodge a pattern -----------------------------------------------------------

# The '@' as itself or a word ("at", "[at]", "(at)"), looked for with `str.find` in lower-cased
# text; the dot as itself, a word, or the ideographic full stop.
_AT_TOKENS = ("@", " at ", "[at]", "(at)", "（at）", "<at>", "{at}", "[ at ]", "( at )")
_SEP = r"(?:\s*(?:\.|。|[\[(（{<]\s*(?:dot|DOT)\s*[\])）}>])\s*|\s+(?:dot|DOT)\s+)"
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
# Top-level domains a spelled-out address is accepted with ("look at this dot product" is not one)
_TLDS = frozenset(
    [
        "com",
        "net",
        "org",
        "cn",
        "edu",
        "gov",
        "io",
        "co",
        "uk",
        "de",
        "fr",
        "jp",
        "kr",
        "hk",
        "tw",
        "sg",
        "au",
        "ca",
        "us",
        "info",
        "biz",
        "me",
        "ai",
        "app",
        "dev",
        "mil",
        "ru",
        "in",
        "it",
        "es",
        "nl",
        "se",
        "ch",
        "br",
        "mx",
        "nz",
        "ie",
        "at",
        "be",
        "dk",
        "fi",
        "no",
        "pl",
        "pt",
        "xyz",
        "top",
    ]
)
_DOMAIN = re.compile(
    r"\s*(?P<domain>[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:"
    + _SEP
    + r"[A-Za-z0-9-]{1,63})*"
    + _SEP
    + r"(?i:"
    + "|".join(sorted(_TLDS, key=len, reverse=True))
    + r"))(?![A-Za-z0-9-])"
)
# Words before a spelled "at" that make it ordinary English: "look at google dot com".
_NOT_A_LOCAL_PART = frozenset(
    [
        "look",
        "looking",
        "looked",
        "me",
        "us",
        "him",
        "her",
        "them",
        "it",
        "this",
        "that",
        "here",
        "there",
        "home",
        "work",
        "arrive",
        "arrived",
        "meet",
        "met",
        "stay",
        "stayed",
        "be",
        "is",
        "are",
        "was",
        "were",
        "available",
        "find",
        "found",
        "visit",
        "go",
        "went",
        "shop",
        "buy",
        "sell",
        "sold",
        "priced",
        "located",
        "based",
        "online",
        "site",
        "sites",
        "page",
        "pages",
        "us.",
    ]
)


def may_spell_email(folded: str) -> bool:
    return "@" in folded or "at" in folded or "AT" in folded


def _at_tokens(folded: str) -> Iterator[tuple[int, int, bool]]:
    """(start, end, spelled) of every '@' or spelled-out "at"."""
    low = folded.lower()
    for token in _AT_TOKENS:
        pos = low.find(token)
        while pos != -1:
            end = pos + len(token)
            if token == " at ":  # keep the spaces around it out of the token
                yield pos + 1, end - 1, True
            else:
                yield pos, end, token != "@"
            pos = low.find(token, pos + 1)


def iter_spelled_emails(folded: str) -> Iterator[Span]:
    """Emails with a spelled or bracketed '@' or dot, or a '。' for the dot.

    Plain `name@example.com` is left to `_pii_rules.iter_emails`.
    """
    for at_start, at_end, spelled in _at_tokens(folded):
        domain = _DOMAIN.match(folded, at_end)
        if domain is None:
            continue
        # walk back over the space before a spelled "at", then over the local part
        start = at_start
        while start > 0 and folded[start - 1] == " " and spelled:
            start -= 1
        local_end = start
        while start > 0 and folded[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < local_end and folded[start] == ".":
            start += 1
        local = folded[start:local_end]
        if not local:
            continue
        text = domain.group("domain")
        if not spelled and "。" not in text and "dot" not in text.lower():
            continue  # a plain address: the plain rule's
        if spelled and (len(local) < 2 or local.lower() in _NOT_A_LOCAL_PART):
            continue
        yield rules.EMAIL, start, domain.end("domain")
