"""The baseline of `cache.py`: the semantic cache's lexical checks before the content guard.

Verbatim from thrifty.gateway.cache.guard as it was before issue #21 (digits, script, template
edits), with one fixed similarity threshold: "today's cache", measured beside the new one in the
same run.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass

_TOKEN = re.compile(r"[a-z0-9]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_DIGITS = re.compile(r"[0-9]+")
_TEMPLATE_RATIO = 0.5  # token-sequence similarity at and above which two texts share a template

# English function words and generic request phrasing: words that change how a question is put,
# not what it asks.
_EN_STOP_WORDS = """
a an the is are was were be been being am do does did done i me my mine you your yours we us our
it its this that these those what which who whom whose how why when where can could would should
will shall may might must please tell explain show give let there here of in on at to for from by
with about as and or but if so than then into onto up out any some also just very really don
"""
_EN_STOP = frozenset(_EN_STOP_WORDS.split())
# Chinese function characters (particles, pronouns, question words, light verbs).
_ZH_STOP = frozenset(
    "的了吗呢吧啊呀么嘛是在有和与及或就都也还又很请问一下我你您他她它们这那个些什怎如何样哪里谁为能可以会要想该给把被让用对从到于之其多少几啥"
)


@dataclass(frozen=True, slots=True)
class Signature:
    """What the checks compare, computed once per text."""

    digits: tuple[str, ...]  # sorted digit runs
    cjk: bool
    tokens: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Signature:
        folded = unicodedata.normalize("NFKC", text).lower()
        tokens = tuple(t if t in _EN_STOP else _fold(t) for t in _TOKEN.findall(folded))
        digits = tuple(sorted(_DIGITS.findall(folded)))
        return cls(digits, any(_is_cjk(t) for t in tokens), tokens)

    def to_list(self) -> list[object]:
        return [list(self.digits), self.cjk, list(self.tokens)]

    @classmethod
    def from_list(cls, data: list[object]) -> Signature:
        digits, cjk, tokens = data
        assert isinstance(digits, list) and isinstance(tokens, list)
        return cls(tuple(map(str, digits)), bool(cjk), tuple(map(str, tokens)))


def same_question(a: Signature, b: Signature) -> bool:
    """False when the texts differ in a way that embeddings are known to miss."""
    if a.digits != b.digits or a.cjk != b.cjk:
        return False
    if a.tokens == b.tokens:
        return True
    matcher = difflib.SequenceMatcher(None, a.tokens, b.tokens, autojunk=False)
    if matcher.ratio() < _TEMPLATE_RATIO:
        return True  # reworded, not a template with a slot changed: the embedding decides
    in_a, in_b = set(a.tokens), set(b.tokens)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        # a word moved elsewhere in the other text is a reordering, not an edit
        ours = [t for t in a.tokens[i1:i2] if _is_content(t) and t not in in_b]
        theirs = [t for t in b.tokens[j1:j2] if _is_content(t) and t not in in_a]
        if ours and theirs:
            return False  # a content word swapped for another
        if len(ours) + len(theirs) == 1:
            return False  # one content word added or dropped ("turn off" / "turn on")
    return True


def _is_cjk(token: str) -> bool:
    return "\u3400" <= token[0] <= "\ufaff"


def _is_content(token: str) -> bool:
    if _is_cjk(token):
        return token not in _ZH_STOP
    return (
        len(token) > 1 and token not in _EN_STOP
    )  # one letter: the s of "France's", the O of O(n)


def _fold(token: str) -> str:
    """Fold English plurals so that "Sundays" and "Sunday" are one word."""
    if len(token) > 3 and not token.isdigit():
        if token.endswith("ies"):
            return token[:-3] + "y"
        if token.endswith("s") and not token.endswith("ss"):
            return token[:-1]
    return token
