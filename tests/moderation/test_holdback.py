"""Streamed answers: moderation holds back only a tail that could still become a match."""

from __future__ import annotations

import random

from thrifty.config import ModerationSettings
from thrifty.context import RequestContext
from thrifty.gateway.holdback import HoldBack, regex_width
from thrifty.gateway.moderation import Moderation, StreamGuard
from thrifty.gateway.wordmatch import apply_masks


def test_only_a_possible_start_of_a_term_is_held() -> None:
    hold = HoldBack(["idiot", "stupid idiot", "笨蛋"], [], 64)
    assert hold.pending("hello") == 0
    assert hold.pending("hello idi") == 3  # may become "idiot"
    assert hold.pending("hello stupid id") == len("stupid id")  # the longest possible start
    assert hold.pending("rapidi") == 0  # "idi" starts mid-word: a word term cannot start there
    assert hold.pending("idi", before="p") == 0 and hold.pending("idi", before=" ") == 3
    assert hold.pending("you idiot") == 5  # whole, but "idiots"? the next character decides
    assert hold.pending("你这个笨") == 1  # Chinese terms start anywhere
    assert hold.pending("IDI") == 3  # case-insensitive, as the scan


def test_a_regex_holds_no_more_than_it_can_match() -> None:
    assert regex_width(r"\bd[a@]mn\b", 64) == 4
    assert regex_width(r"\d{3}-\d{4}", 64) == 8
    assert regex_width(r"bad.*word", 64) == 64  # unbounded: the configured bound
    hold = HoldBack([], [r"\bd[a@]mn\b"], 64)
    assert hold.pending("hello world") == 4 and hold.pending("ab") == 2


def ctx() -> RequestContext:
    return RequestContext("chat", {"messages": []}, "m", True)


def stream(guard: StreamGuard, pieces: list[str]) -> list[str]:
    sent = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        choice = {
            "index": 0,
            "delta": {"content": piece},
            "finish_reason": "stop" if last else None,
        }
        sent.append(guard.chunk({"choices": [choice]})["choices"][0]["delta"]["content"])
    return sent


def test_with_the_shipped_lists_plain_words_pass_at_once() -> None:
    mod = Moderation(ModerationSettings())
    words = ["The", " capital", " of", " France", " is", " Paris", ".", " 巴黎", "是", "首都", "。"]
    sent = stream(StreamGuard(mod, ctx()), words)
    assert sent == words  # nothing held: every chunk leaves as it came, none of them empty


def test_the_shipped_lists_still_mask_across_any_split() -> None:
    mod = Moderation(ModerationSettings())
    terms = [t for wl in mod.output.lists for t in wl.terms if wl.action == "mask"]
    en = next(t for t in terms if t.isascii() and " " not in t)
    zh = next(t for t in terms if not t.isascii())
    text = f"Well {en}, that is {en.upper()}ish but {en}. 这是{zh}吗？{zh}"
    expected = apply_masks(text, mod.output.scan(text), "***")
    assert expected != text
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 15)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert "".join(stream(StreamGuard(mod, ctx()), pieces)) == expected
