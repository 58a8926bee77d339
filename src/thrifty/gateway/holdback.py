"""How much of a streamed answer moderation must hold back: only what could still become a match.

A term can arrive split across chunks ("da" + "mn"), so the tail of the text seen so far cannot
be sent while it might be the start of a term. Holding back a fixed window (the longest term's
length) is safe but costly to read: the first chunks reach the client empty and words arrive cut
at arbitrary places. The minimum is the longest tail of the text that is still a prefix of some
term and could start a match there:

- a word term (one starting with an ASCII letter or digit) matches only after a non-word
  character, so a tail that starts mid-word is never held for it ("fi|sh" is sent at once even
  though "sh…" starts a term);
- a term that is complete at the very end is still held: whether it is a whole word depends on
  the next character;
- a regex (`re:` lines) has no cheap "could this still match" test, so its lists hold back the
  longest text the regex can match (from its parsed pattern), or `moderation.max_regex_chars`
  when that is unbounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def regex_width(pattern: str, cap: int) -> int:
    """The most characters `pattern` can match, at most `cap` (unbounded patterns: `cap`)."""
    try:
        from re import _parser  # type: ignore[attr-defined]  # the parser `re` itself uses

        _, most = _parser.parse(pattern, re.IGNORECASE).getwidth()
    except Exception:  # another Python's internals: the configured bound is always safe
        return cap
    return min(int(most), cap)


class HoldBack:
    """`pending(text, before)`: how many trailing characters of `text` must wait for more."""

    def __init__(self, terms: Iterable[str], regexes: Iterable[str], max_regex_chars: int) -> None:
        words: set[str] = set()
        others: set[str] = set()
        longest = 0
        for term in terms:
            lowered = term.lower()
            longest = max(longest, len(lowered))
            into = words if _is_word_char(lowered[0]) else others
            into.update(lowered[:k] for k in range(1, len(lowered) + 1))
        self._words = frozenset(words)
        self._others = frozenset(others)
        self._longest = longest
        self.regex_hold = max(
            (regex_width(p, max_regex_chars) for p in regexes), default=0
        )  # every regex list waits this long, whatever the text

    @property
    def most(self) -> int:
        """The most that is ever held back."""
        return max(self._longest, self.regex_hold)

    def pending(self, text: str, before: str = " ") -> int:
        """Trailing characters of `text` that could still grow into a match; `before` is the
        character preceding `text` (a word term must start after a non-word character)."""
        n = len(text)
        keep = min(self.regex_hold, n)
        if not self._longest or not n:
            return keep
        lowered = text.lower()
        if len(lowered) != n:  # only İ grows when lowered: compare it as the scan does
            lowered = text.replace("\u0130", "I").lower()
        for i in range(max(0, n - self._longest), n - keep):  # longest tail first
            tail = lowered[i:]
            if tail in self._others:
                return n - i
            if tail in self._words and not _is_word_char(lowered[i - 1] if i else before):
                return n - i
        return keep
