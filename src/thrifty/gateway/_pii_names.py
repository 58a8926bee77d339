"""Personal names with street addresses (`name_address`), Chinese and English.

A street address alone is often a shop's or an office's, and a name alone is often a public
figure's, so neither counts on its own. What counts: an address with a flat or room in it (a
home: `3单元502室`, `Apt 4B`), or an address with a person's name near it
(`收件人：张伟，朝阳区建国路88号`, `Mr John Smith, 12 Baker Street`). Both the name and the
address are reported.

The address patterns come first, and they are cheap; only when one matched does the name search
run, in a window around it. For Chinese that search uses a segmenter with part-of-speech tags
(`jieba`, the `pii` extra) when it is installed: it tells 张伟 (a person) from 王府井 (a place),
which no surname list can. It is imported on first use (loading its dictionary takes about a
second, once per process). Without it, names after a cue word (`收件人`, `姓名`) or before
`先生`/`女士` still count.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from thrifty.gateway import _pii_rules as rules

Span = rules.Span

_CJK = re.compile(r"[\u4e00-\u9fff]")

# --- Chinese -------------------------------------------------------------------------------------

# The anchor of an address: a street (or village) then a house number, e.g. 建国路88号.
_ZH_STREET_NUMBER = re.compile(
    r"(?:路|街|道|巷|弄|胡同|里|村|组|大院)[0-9]{1,5}(?:-[0-9]{1,4})?号(?:院)?"
)
# What may follow the number: building, unit, floor, room (3号楼2单元502室, 5栋1803).
_ZH_UNIT = re.compile(
    r"(?:[0-9A-Za-z]{1,5}(?:号楼|号院|栋|幢|座|单元|层|楼|室|号|房|户)|-[0-9]{1,5})+"
)
_ZH_HOME = re.compile(r"室|单元|户|房|号楼|栋|幢")
# Characters an address never starts after: the verb or particle that introduces it.
_ZH_BEFORE_ADDRESS = frozenset("在住址是于到寄送往至和与及或的为把从来去")
_ZH_CUES = re.compile(
    r"(?:收件人|收货人|联系人|寄件人|姓名|患者|病人|客户|业主|户主|租客|住户|房东|学生|员工|"
    r"本人|家属|监护人)[:：\s]*(?P<name>[\u4e00-\u9fff]{2,4})"
)
_ZH_HONORIFIC = re.compile(r"(?P<name>[\u4e00-\u9fff]{1,2})(?:先生|女士|小姐|老师|同学)")
_ZH_NAME_END = frozenset("住在是的家于和与及先女，。收寄电手地")
# Single characters that never end a name: particles, verbs and pronouns around one.
_NOT_IN_NAME = frozenset(
    "的了是在和与及或住家于到给把被从向对说也都就还又很请您你我他她它们这那有没不为以将等个位名先女"
)
_ADDRESS_CHARS = frozenset("路街道巷弄村区县市省镇乡号楼栋室院")
# The hundred commonest surnames: without the segmenter, a cue word plus one of these.
_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃"
    "武戴莫孔向汤欧阳司马上官诸葛"
)


def _walk_back(text: str, anchor: int) -> int:
    start = anchor
    while (
        start > 0
        and anchor - start < 24
        and (_CJK.match(text[start - 1]) or text[start - 1].isdigit())
        and text[start - 1] not in _ZH_BEFORE_ADDRESS
    ):
        start -= 1
    return start


def iter_zh(folded: str, load_segmenter: Callable[[], Segment | None]) -> Iterator[Span]:
    for anchor in _ZH_STREET_NUMBER.finditer(folded):
        rules.check_deadline()  # each address may be segmented: a long list of them is slow
        start = _walk_back(folded, anchor.start())
        end = anchor.end()
        unit = _ZH_UNIT.match(folded, end)
        if unit is not None:
            end = unit.end()
        home = unit is not None and _ZH_HOME.search(unit.group()) is not None
        names = list(_zh_names(folded, start, end, load_segmenter()))
        if names or home:
            yield rules.NAME_ADDRESS, start, end
            for name_start, name_end in names:
                yield rules.NAME_ADDRESS, name_start, name_end


def _zh_names(
    text: str, start: int, end: int, segment: Segment | None
) -> Iterator[tuple[int, int]]:
    low, high = max(0, start - 40), min(len(text), end + 30)
    window = text[low:high]
    if segment is not None:
        yield from _segmented_names(segment(window), low, start, end)
    for cue in _ZH_CUES.finditer(window):
        name = cue.group("name")
        cut = next((i for i, c in enumerate(name) if i >= 2 and c in _ZH_NAME_END), len(name))
        if name[0] in _SURNAMES and not _ADDRESS_CHARS & set(name[1:cut]):
            yield low + cue.start("name"), low + cue.start("name") + cut
    for honorific in _ZH_HONORIFIC.finditer(window):
        name = honorific.group("name")
        if name[-1] in _SURNAMES or name in _SURNAMES:
            yield low + honorific.start("name"), low + honorific.end("name")


def _segmented_names(
    words: list[tuple[str, str]], low: int, start: int, end: int
) -> Iterator[tuple[int, int]]:
    """Names in a segmented window: words tagged `nr`, and a surname the dictionary left on its
    own followed by one or two single characters (张 伟 → 张伟; 王府井 stays one word).

    The segmenter runs without its HMM (20 times faster), which splits names it does not know
    into characters; the surname rule puts them back together.
    """
    offsets = []
    pos = low
    for word, _ in words:
        offsets.append(pos)
        pos += len(word)
    for i, (word, flag) in enumerate(words):
        at = offsets[i]
        if start <= at < end:
            continue
        if flag == "nr" and 2 <= len(word) <= 4 and not _ADDRESS_CHARS & set(word[1:]):
            yield at, at + len(word)
        elif len(word) == 1 and word in _SURNAMES:
            given = 0
            for next_word, _ in words[i + 1 : i + 3]:
                if len(next_word) != 1 or not _CJK.match(next_word) or next_word in _NOT_IN_NAME:
                    break
                given += 1
            if given:
                yield at, at + 1 + given


Segment = Callable[[str], list[tuple[str, str]]]


@functools.cache
def segmenter() -> Segment | None:
    """jieba's part-of-speech cut, loaded on first use; None when the `pii` extra is missing."""
    try:
        jieba: Any = importlib.import_module("jieba")
        posseg: Any = importlib.import_module("jieba.posseg")
    except ImportError:
        return None
    jieba.setLogLevel(logging.WARNING)  # it announces its dictionary load at DEBUG
    cut = posseg.cut

    def segment(text: str) -> list[tuple[str, str]]:
        return [(pair.word, pair.flag) for pair in cut(text, HMM=False)]

    return segment


# --- English -------------------------------------------------------------------------------------

_STREET_TYPES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|Trail|Row|Gardens|Strasse"
)
_EN_STREET = re.compile(
    r"[0-9](?<![0-9A-Za-z].)[0-9]{0,5}[A-Za-z]?,?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\.?\s+){1,3}"
    f"(?:{_STREET_TYPES})" + r"\b\.?"
)
_EN_UNIT = re.compile(r",?\s*(?:Apt|Apartment|Unit|Flat|#)\.?\s*[0-9A-Za-z-]{1,6}\b")
_EN_TAIL = re.compile(
    r"(?:,\s*[A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2})?(?:,?\s*[A-Z]{2}\s+[0-9]{5}(?:-[0-9]{4})?)?"
)
_NAME = r"[A-Z][a-z]+(?:[ \t]+[A-Z]\.)?(?:[ \t]+[A-Z][a-z]+(?:-[A-Z][a-z]+)?){1,2}"
_EN_TITLED = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ \t]+(?P<name>[A-Z][a-z]+(?:[ \t]+[A-Z][a-z]+)?)"
)
_EN_CUED = re.compile(
    r"(?i:\b(?:name|recipient|ship\s+to|deliver\s+to|send\s+(?:it\s+)?to|patient|customer|"
    r"tenant|resident|attn|attention|addressee|contact|client|employee))\b[ \t]*[:：\-]?[ \t]*"
    f"(?P<name>{_NAME})"
)
_EN_BEFORE = re.compile(
    f"(?P<name>{_NAME})"
    r"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*|[ \t]+(?:lives|lived|resides|resided|living|stays|moved)"
    r"[ \t]+(?:at|in|on|to)[ \t]+|['’]s[ \t]+(?:address|home)[ \t]+(?:is[ \t]+)?)$"
)
_NOT_A_PERSON = frozenset(
    [
        "Inc",
        "Ltd",
        "LLC",
        "Corp",
        "Company",
        "Co",
        "Office",
        "Bank",
        "University",
        "College",
        "School",
        "Hotel",
        "Store",
        "Shop",
        "Hospital",
        "Clinic",
        "Center",
        "Centre",
        "Museum",
        "Library",
        "Church",
        "Station",
        "Airport",
        "Park",
        "Street",
        "Road",
        "Avenue",
        "Building",
        "Tower",
        "Plaza",
        "Mall",
        "Restaurant",
        "Cafe",
        "Group",
        "Foundation",
        "Institute",
        "Department",
        "Ministry",
        "City",
        "County",
        "The",
        "Our",
        "Your",
        "Their",
        "Please",
        "Dear",
        "Send",
        "Ship",
        "Deliver",
        "Visit",
        "Call",
        "Meet",
    ]
)


def iter_en(folded: str) -> Iterator[Span]:
    for street in _EN_STREET.finditer(folded):
        rules.check_deadline()
        start, end = street.start(), street.end()
        unit = _EN_UNIT.match(folded, end)
        if unit is not None:
            end = unit.end()
        tail = _EN_TAIL.match(folded, end)
        if tail is not None:
            end = tail.end()
        names = list(_en_names(folded, start, end))
        if names or unit is not None:
            yield rules.NAME_ADDRESS, start, end
            for name_start, name_end in names:
                yield rules.NAME_ADDRESS, name_start, name_end


def _person(name: str) -> bool:
    return not any(word.strip(".") in _NOT_A_PERSON for word in name.split())


def _en_names(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    low = max(0, start - 80)
    window = text[low : min(len(text), end + 40)]
    for pattern in (_EN_TITLED, _EN_CUED):
        for match in pattern.finditer(window):
            if _person(match.group("name")):
                yield low + match.start("name"), low + match.end("name")
    before = _EN_BEFORE.search(text, max(0, start - 60), start)
    if before is not None and _person(before.group("name")):
        yield before.start("name"), before.end("name")
