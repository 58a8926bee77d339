"""The content guard: two questions are the same one only if what matters in them agrees.

A sentence embedding places "enable 2FA" next to "disable 2FA", "节假日客服上班吗？" next to
"周末客服上班吗？" and a table for 2 next to a table for 4: a cache that trusted similarity
alone would answer one with the other. So a semantic hit needs similarity AND agreement on:

- numbers with their units, in order (Arabic digits, English number words, Chinese numerals:
  "两个人" is 2 people, "八折" 8 of 折, "百分之五" 5 %, "5 kg" is not "5 lb");
- codes and names: product, model and order codes (S23, E04, CA981), single-letter models
  (Model Y), and capitalized or all-caps names (Paris, Netflix, USD) must appear on both sides;
- dates, times and places: calendar and deictic time words (tomorrow, weekend, 周末, 下午,
  国庆节), and place names (jieba's `ns` tag for Chinese) must be the same sets;
- polarity: opposite actions and states (enable/disable, turn on/off, 开启/关闭, 退款/付款,
  升高/降低, before/after) map to one axis with a sign; the signs must agree, and synonyms on
  the same side ("turn off" and "disable") count as the same word;
- negation: the number of negations (not, never, 没, 不 ...) must have the same parity;
- the key words: content words (English words less function words, plurals folded; Chinese
  segmented with jieba, lazily imported). When the two are mostly the same word sequence (a
  template with one slot changed), swapping a content word for another, or adding or dropping
  one, makes it another question (平板/手机, 支付宝/微信支付, leather/fabric sofa). Paraphrases
  reorder and reword; those the embedding and the learned thresholds decide.

`disagreement` returns the first failed check's name ("number", "code", "name", "time",
"place", "polarity", "negation", "script", "swap", "added") or None: the metrics count declined
near-hits by that reason. Tuned on tests/data/cache_pairs_tuning.jsonl and paraphrases.jsonl,
measured on the held-out tests/data/cache_pairs_heldout.jsonl (see `benchmarks/cache.py`).
"""

from __future__ import annotations

import difflib
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

from thrifty.gateway.cache._lexicon import (
    EN_NUMBERS,
    EN_PHRASES,
    EN_POLARITY,
    EN_STOP,
    EN_SYNONYMS,
    EN_TIMES,
    EN_UNITS,
    ZH_NEGATORS,
    ZH_NOT_NEGATION,
    ZH_NOT_NUMBER,
    ZH_POLARITY,
    ZH_STOP,
    ZH_SYNONYMS,
    ZH_TIMES,
    ZH_UNITS,
    ZH_WORDS,
    zh_numeral,
)

_TEMPLATE_RATIO = 0.5  # content-sequence similarity at and above which two texts share a template
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAS_CJK = re.compile(f"[{_CJK}]")
# Latin words (with inner apostrophes and hyphens), numbers (5,000 and 38.5), symbols of units
_LATIN = re.compile(
    r"(?P<num>\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<glued>[A-Za-z]+\d*[A-Za-z0-9]*)?"
    r"|(?P<word>[A-Za-z]+(?:\d+[A-Za-z0-9]*)?(?:'[A-Za-z]+)?)"
    r"|(?P<sym>[%$€£¥])"
    r"|(?P<stop>[.?!。？！;；\n])"
)
_ZH_NUMBER = re.compile(
    rf"(?P<pct>百分之)?(?P<val>\d+(?:\.\d+)?|[零一二两三四五六七八九十百千万半]+)(?=(?P<rest>[{_CJK}A-Za-z]{{0,3}}))"
)
_ZH_UNITS_BY_LENGTH = sorted(ZH_UNITS, key=len, reverse=True)
_ZH_NUMBER_WORD = re.compile("[零一二两三四五六七八九十百千万半几]+.?")
_EN_ROUTE = re.compile(r"(?i)\bfrom\b.+\bto\b|->|→")
_ZH_A_NOT_A = re.compile(r"(\w)[不没]\1")  # 冷不冷, 有没有: a question, not a negation
_ZH_ROUTE = re.compile("[到至飞往→]")
_LATIN_IN_CJK = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .,%'$/-]*")

_jieba_lock = threading.Lock()
_jieba: Any = None
_tags: dict[str, str] = {}


def _segment(text: str) -> list[tuple[str, str]]:
    """(word, part-of-speech tag) pairs by jieba; its dictionary loads on first use (about 1 s).

    Words come from `jieba.cut` and tags from its dictionary (a lookup): jieba's own tagger
    runs a second HMM and costs about five times as much. The guard's own words (payment
    methods, polarity and time words) go into a tokenizer of its own that reads jieba's shared
    dictionary through an overlay: the privacy stage's segmentation never sees them, and the
    dictionary is not loaded twice.
    """
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                _jieba = _own_tokenizer()
    return [(w, _tags.get(w, "x")) for w in _jieba.cut(text)]


def _own_tokenizer() -> Any:
    import logging
    from collections import ChainMap

    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    _tags.update(jieba.posseg.dt.word_tag_tab)
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ = ChainMap({}, jieba.dt.FREQ)  # our words land in the empty front map
    tokenizer.total = jieba.dt.total
    tokenizer.initialized = True
    for word in (*ZH_WORDS, *ZH_POLARITY, *ZH_TIMES, *ZH_SYNONYMS):
        if len(word) > 1:
            tokenizer.add_word(word)
    return tokenizer


def warm_up() -> None:
    """Load the segmenter's dictionary now (the cache calls this off the event loop)."""
    _segment("预热")


@dataclass(frozen=True, slots=True)
class Signature:
    """What the checks compare, computed once per text (and stored with its vector)."""

    cjk: bool
    numbers: tuple[tuple[str, str], ...]  # (value, unit or "") in order of appearance
    codes: tuple[str, ...]  # sorted
    names: tuple[str, ...]  # sorted, casefolded
    times: tuple[str, ...]  # sorted
    places: tuple[str, ...]  # in order, when the text names a route (from X to Y, X到Y)
    polarity: tuple[str, ...]  # sorted "axis+" / "axis-"
    negations: int
    tokens: tuple[str, ...]  # content words in order (polarity words canonical)
    sequence: tuple[str, ...]  # every word in order, as the template check compares them
    words: tuple[str, ...]  # every word, casefolded, for the names' presence check

    @classmethod
    def of(cls, text: str) -> Signature:
        folded = unicodedata.normalize("NFKC", text)
        if _HAS_CJK.search(folded):
            return _chinese(folded)
        return _english(folded)

    def to_list(self) -> list[object]:
        return [
            self.cjk,
            [list(n) for n in self.numbers],
            list(self.codes),
            list(self.names),
            list(self.times),
            list(self.places),
            list(self.polarity),
            self.negations,
            list(self.tokens),
            list(self.sequence),
            list(self.words),
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> Signature:
        cjk, numbers, codes, names, times, places, polarity, negations, tokens, seq, words = data
        return cls(
            bool(cjk),
            tuple((str(v), str(u)) for v, u in numbers),
            tuple(map(str, codes)),
            tuple(map(str, names)),
            tuple(map(str, times)),
            tuple(map(str, places)),
            tuple(map(str, polarity)),
            int(negations),
            tuple(map(str, tokens)),
            tuple(map(str, seq)),
            tuple(map(str, words)),
        )


def disagreement(a: Signature, b: Signature) -> str | None:
    """The first check the two texts fail, or None when they may be the same question."""
    if a.cjk != b.cjk:
        return "script"  # an answer comes back in the language it was asked in
    if not _same_numbers(a.numbers, b.numbers):
        return "number"
    if a.codes != b.codes:
        return "code"
    if not _names_present(a, b):
        return "name"
    if a.times != b.times:
        return "time"
    if _reversed_route(a, b):
        return "place"
    if _opposed(a.polarity, b.polarity):
        return "polarity"
    if a.negations % 2 != b.negations % 2:
        return "negation"
    return _template_edit(a, b)


def same_question(a: Signature, b: Signature) -> bool:
    return disagreement(a, b) is None


# -- the checks -----------------------------------------------------------------------------------


def _same_numbers(a: tuple[tuple[str, str], ...], b: tuple[tuple[str, str], ...]) -> bool:
    """Same values in the same order; units compared where both sides name one."""
    if len(a) != len(b):
        return False
    for (va, ua), (vb, ub) in zip(a, b, strict=True):
        if va != vb or (ua and ub and ua != ub):
            return False
    return True


def _reversed_route(a: Signature, b: Signature) -> bool:
    """The same places in another order, on a route (Paris to Nice / Nice to Paris)."""
    return len(a.places) >= 2 and sorted(a.places) == sorted(b.places) and a.places != b.places


def _opposed(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """An axis both sides name with different signs (enable vs disable; not enable vs nothing)."""
    if a == b:
        return False
    axes_a = {p[:-1] for p in a}
    shared = axes_a & {p[:-1] for p in b}
    return any({p for p in a if p[:-1] == x} != {p for p in b if p[:-1] == x} for x in shared)


def _names_present(a: Signature, b: Signature) -> bool:
    """Each side's names appear among the other side's words (casefolded)."""
    in_a, in_b = set(a.words), set(b.words)
    return all(n in in_b for n in a.names) and all(n in in_a for n in b.names)


def _template_edit(x: Signature, y: Signature) -> str | None:
    a, b = x.tokens, y.tokens
    if a == b:
        return None
    in_a, in_b = set(a), set(b)
    only_a = [t for t in a if t not in in_b]
    only_b = [t for t in b if t not in in_a]
    if not only_a and not only_b:
        return None  # the same words, reordered
    matcher = difflib.SequenceMatcher(None, x.sequence, y.sequence, autojunk=False)
    if matcher.ratio() < _TEMPLATE_RATIO:
        return None  # reworded, not a template with a slot changed: similarity decides
    if only_a and only_b:
        return "swap"  # a content word swapped for another (平板/手机, leather/fabric)
    if len(only_a) + len(only_b) == 1:
        return "added"  # one content word added or dropped (a wine stain / a stain)
    return None


# -- English --------------------------------------------------------------------------------------


def _english(text: str) -> Signature:
    text = re.sub(r"(?i)\b(can)'?t\b", r"\1 not", text)
    text = re.sub(r"(?i)\bwon'?t\b", "will not", text)
    text = re.sub(r"(?i)n't\b", " not", text)
    text = re.sub(r"(?i)'s\b", "", text)  # France's capital: France
    text = re.sub(r"(?<=[A-Za-z])-(?=[A-Za-z])", "", text)  # wi-fi -> wifi, e-mail -> email
    text = re.sub(r"(?<=\d)-(?=[A-Za-z])", " ", text)  # 3-year -> 3 year
    numbers: list[tuple[str, str]] = []
    codes: set[str] = set()
    names: list[str] = []
    words: list[str] = []
    sentence_start = True
    pending: int | None = None  # index in numbers of the last number still looking for a unit
    unit_before: str | None = None
    for m in _LATIN.finditer(text):
        kind = m.lastgroup if m.group("num") is None else "num"
        if kind == "stop":
            sentence_start, pending = True, None
            continue
        if kind == "sym":
            sym = {"%": "%", "$": "usd", "€": "eur", "£": "gbp", "¥": "cny"}[m.group("sym")]
            if pending is not None and sym == "%":
                numbers[pending] = (numbers[pending][0], "%")
                pending = None
            else:
                unit_before = sym
            continue
        sentence_start, was_start = False, sentence_start
        if kind == "num":
            value = _number(m.group("num").replace(",", ""))
            glued = m.group("glued")
            if glued and glued.lower() not in EN_UNITS:
                codes.add((m.group("num") + glued).lower())  # 4K, 7pm, RTX 4090's 2TB
                pending = None
                continue
            numbers.append((value, EN_UNITS[glued.lower()] if glued else unit_before or ""))
            unit_before = None
            pending = None if glued else len(numbers) - 1
            continue
        raw = m.group("word")
        low = raw.lower()
        if any(c.isdigit() for c in raw):
            codes.add(low)
            pending = None
            continue
        if low in EN_NUMBERS:
            # "one" is often a pronoun ("a new one"): a number only when a unit follows
            numbers.append((EN_NUMBERS[low] + ("?" if low == "one" else ""), unit_before or ""))
            unit_before, pending = None, len(numbers) - 1
            words.append(low)
            continue
        if pending is not None:
            unit = EN_UNITS.get(low) or EN_UNITS.get(_fold(low))
            if unit is not None:  # the number's unit: compared with it, not as a word
                numbers[pending] = (numbers[pending][0], unit)
                pending = None
                continue
            if low not in EN_STOP:
                pending = None
        words.append(low)
        if not was_start and raw != "I" and low not in EN_STOP:
            if len(raw) == 1 and raw.isupper():
                codes.add(low)  # Model Y, Series X, Plan B
            elif raw[0].isupper() or any(c.isupper() for c in raw[1:]):
                names.append(_fold(low))  # Paris, Netflix, USD, iPhone
    numbers = [(v.rstrip("?"), u) for v, u in numbers if not v.endswith("?") or u]
    route = names if _EN_ROUTE.search(text) else []
    return _finish(False, numbers, codes, set(names), words, [], route)


def _finish(
    cjk: bool,
    numbers: list[tuple[str, str]],
    codes: set[str],
    names: set[str],
    words: list[str],
    zh_times: list[str],
    route: list[str],
    zh_negations: int = 0,
) -> Signature:
    """Polarity, times, negations and content tokens from the words of either language."""
    tokens: list[str] = []
    sequence: list[str] = []
    polarity: set[str] = set()
    times: set[str] = set(zh_times)
    negations = zh_negations
    folded = [_fold(w) if not cjk else w for w in words]
    i = 0
    while i < len(folded):
        word = folded[i]
        pair = f"{word} {folded[i + 1]}" if i + 1 < len(folded) else ""
        phrase = EN_PHRASES.get(pair) if not cjk else None
        i += 2 if phrase else 1
        if not cjk and word in ("not", "never", "no", "without"):
            negations += 1
            continue
        word = phrase or (ZH_SYNONYMS if cjk else EN_SYNONYMS).get(word, word)
        pole = word if word[-1] in "+-" else (ZH_POLARITY if cjk else EN_POLARITY).get(word)
        if pole is not None:
            polarity.add(pole)
            word = pole
        elif not cjk and word in EN_TIMES:
            times.add(word)
        sequence.append(word)
        if pole is not None:
            tokens.append(word)
        elif _is_content(word, cjk):
            tokens.append(word if cjk else _stem(word))
    return Signature(
        cjk,
        tuple(numbers),
        tuple(sorted(codes)),
        tuple(sorted(names)),
        tuple(sorted(times)),
        tuple(dict.fromkeys(route)),
        tuple(sorted(polarity)),
        negations,
        tuple(tokens),
        tuple(sequence),
        tuple(sorted(set(words) | set(folded))),
    )


def _is_content(word: str, cjk: bool) -> bool:
    if cjk:
        return bool(_HAS_CJK.search(word)) and word not in ZH_STOP
    return len(word) > 1 and word not in EN_STOP and word not in EN_NUMBERS


def _stem(word: str) -> str:
    """A light English stem, so that invented / inventor and booking / book meet."""
    for suffix in ("ations", "ation", "ings", "ing", "ers", "ors", "ed", "er", "or", "es", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _fold(token: str) -> str:
    """Fold English plurals so that "Sundays" and "Sunday" are one word."""
    if len(token) > 3 and token.isalpha():
        if token.endswith("ies"):
            return token[:-3] + "y"
        if token.endswith(("ches", "shes", "sses", "xes")):
            return token[:-2]
        if token.endswith("s") and not token.endswith(("ss", "us", "is")):
            return token[:-1]
    return token


def _number(text: str) -> str:
    """A canonical spelling: 5000, 38.5, 0.5 (so 5,000 and 5000 agree)."""
    if "." in text:
        return text.rstrip("0").rstrip(".") or "0"
    return str(int(text))


# -- Chinese --------------------------------------------------------------------------------------


def _chinese(text: str) -> Signature:
    # Latin inside Chinese text (iPhone 15, G1234, WiFi): codes and names by the English rules
    fragments = _LATIN_IN_CJK.findall(text)
    english = _english(" , ".join(fragments)) if fragments else None
    codes = set(english.codes) if english else set()
    latin_words = [w for w in english.words if len(w) > 1] if english else []
    names = {
        _fold(w.lower())
        for w in re.findall(r"[A-Za-z]{2,}", " ".join(fragments))
        if w[0].isupper() or any(c.isupper() for c in w[1:])
    }
    numbers: list[tuple[str, str]] = []
    scan = _blank(text, ZH_NOT_NUMBER)
    for m in _ZH_NUMBER.finditer(scan):
        value = m.group("val")
        if value.isascii() and re.search(r"[A-Za-z]\d*$", scan[: m.start()]):
            continue  # the digits of a code (G1234): the codes compare them
        number = _number(value) if value.isascii() else zh_numeral(value)
        if number is None:
            continue
        unit = "%" if m.group("pct") else _zh_unit(m.group("rest"))
        if value == "一" and not unit:
            continue  # 一个, 一本, 一次: an article, not a count
        numbers.append((number, unit))
    unnegated = _ZH_A_NOT_A.sub("", _blank(text, ZH_NOT_NEGATION))
    negations = sum(unnegated.count(c) for c in ZH_NEGATORS) + unnegated.count("取消")
    words: list[str] = list(latin_words)
    times: list[str] = []
    places: list[str] = []
    for word, flag in _segment(_LATIN_IN_CJK.sub(" ", text)):
        word = word.strip()
        if not word or not _HAS_CJK.search(word):
            continue
        if word == "取消" or all(c in ZH_NEGATORS or c == "有" for c in word):
            continue  # negations: counted above
        if flag == "ns":
            places.append(word)
        if flag == "t" or word in ZH_TIMES:
            times.append(ZH_SYNONYMS.get(word, word))
        if flag == "m" and _ZH_NUMBER_WORD.fullmatch(word):
            continue  # a number: compared above
        words.append(word)
    route = places if _ZH_ROUTE.search(text) else []
    return _finish(True, numbers, codes, names, words, times, route, negations)


def _blank(text: str, words: tuple[str, ...]) -> str:
    """`text` with each of `words` blanked out (same length, so offsets hold)."""
    for word in words:
        text = text.replace(word, "\u3000" * len(word))
    return text


def _zh_unit(rest: str) -> str:
    rest = rest.removeprefix("个")  # 两个人, 三个月: the classifier, then the unit
    for unit in _ZH_UNITS_BY_LENGTH:
        if rest.startswith(unit):
            return ZH_UNITS[unit]
    return ""
