"""Text written in an encoding that anyone undoes at a glance, decoded so it can be scanned.

Three encodings are undone: percent-encoding (`%31%33%38…`, `li.na%40example.com` in a URL or a
form body), HTML character references (`&#49;&#51;`), and base64 of text (standard or URL-safe
alphabet, 12 to 4,096 characters, decoding to printable UTF-8). `decoded_tokens` yields each
whitespace-free token that decodes to other text; the detector scans the decoded text (to a depth
of two: base64 of a percent-encoded URL) and reports a finding as the whole token, so masking
replaces the token and restoring puts it back as written.

Not undone (a stated limit, in the README): hex, ROT13, compression, encryption, deeper nesting,
digits spelled out in words, a number split over several JSON numbers, text in an image, and a
base64 run over 4,096 characters (a file: `privacy.unscannable` decides where it may go).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterator
from urllib.parse import unquote

_PERCENT_TOKEN = re.compile(r"[^\s%]*(?:%[0-9A-Fa-f]{2}[^\s%]*)+")
_ENTITY_TOKEN = re.compile(r"\S*&#(?:[0-9]{1,7}|[xX][0-9A-Fa-f]{1,6});\S*")
# The next run of 12 or more base64 characters, matched from a position: what comes before it
# (other characters, shorter runs) is skipped inside the engine, possessively, so the text is
# read once (a plain search for the run restarts at every character of every word: twice the
# time on prose).
_BASE64_NEXT = re.compile(
    r"(?:[^A-Za-z0-9+/_-]++|[A-Za-z0-9+/_-]{1,11}+(?![A-Za-z0-9+/_-]))*+"
    r"([A-Za-z0-9+/_-]{12,}+={0,2})"
)
_MAX_BASE64 = 4096
_URL_SAFE = str.maketrans("-_", "+/")
_BLANKS = str.maketrans("\t\n\r", "   ")

Token = tuple[int, int, str]  # start, end, the decoded text


def decoded_tokens(text: str) -> Iterator[Token]:
    """Each token of `text` that decodes to different text, with that text."""
    if "%" in text:
        for match in _PERCENT_TOKEN.finditer(text):
            decoded = unquote(match.group())
            if decoded != match.group():
                yield match.start(), match.end(), decoded
    if "&#" in text:
        for match in _ENTITY_TOKEN.finditer(text):
            yield match.start(), match.end(), html.unescape(match.group())
    if len(text) < 12:
        return
    at = 0
    while (run := _BASE64_NEXT.match(text, at)) is not None:
        at = run.end()
        text_of = _from_base64(run.group(1))
        if text_of is not None:
            yield run.start(1), at, text_of


def _from_base64(token: str) -> str | None:
    """The text `token` is the base64 of, or None when it is not base64 of printable text."""
    if len(token) > _MAX_BASE64 or token.isdigit():
        return None  # a file (its own rule), or a number (the numeric rules read it as it is)
    data = token.rstrip("=")
    if len(data) % 4 == 1:
        return None
    if "-" in data or "_" in data:
        if "+" in data or "/" in data:
            return None  # two alphabets: a path or an identifier, not base64
        data = data.translate(_URL_SAFE)
    try:
        decoded = base64.b64decode(data + "=" * (-len(data) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded if decoded.translate(_BLANKS).isprintable() else None
