"""Word lists and the matcher: file format, boundaries, Chinese, masks, and split stream chunks."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from thrifty.config import ModerationSettings
from thrifty.context import RequestContext
from thrifty.errors import ContentPolicyViolation
from thrifty.gateway.moderation import Moderation, StreamGuard
from thrifty.gateway.wordmatch import Matcher, WordList, load_word_lists

LISTS = {
    "banned": "# action: block\n# direction: both\nforbidden phrase\n禁词\n",
    "rude": "# action: mask\nidiot\nstupid idiot\n笨蛋\nre:\\bd[a@]mn\\b\n",
    "watch": "# Look at these.\n# action: flag\n# direction: input\nsecret plan\n秘密计划\n",
}


@pytest.fixture()
def settings(tmp_path: Path) -> ModerationSettings:
    files = []
    for name, text in LISTS.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return ModerationSettings(shipped_lists=False, files=files)


def test_file_format_headers_and_overrides() -> None:
    wl = WordList.parse("rude", LISTS["rude"])
    assert wl.action == "mask" and wl.directions == {"input", "output"}
    assert wl.terms == ("idiot", "stupid idiot", "笨蛋") and wl.patterns == (r"\bd[a@]mn\b",)
    watch = WordList.parse("watch", LISTS["watch"])
    assert watch.action == "flag" and watch.directions == {"input"}
    assert WordList.parse("x", "word\n").action == "flag"  # no header: flag, both ways
    from thrifty.config import WordListSettings

    override = WordListSettings(action="block", direction="output")
    wl = WordList.parse("rude", LISTS["rude"], override)
    assert wl.action == "block" and wl.directions == {"output"}
    with pytest.raises(ValueError, match="bad regex"):
        WordList.parse("broken", "re:(unclosed\n")
    with pytest.raises(ValueError, match="bad action"):
        WordList.parse("broken", "# action: explode\nword\n")


def test_shipped_lists_load_and_can_be_turned_off(tmp_path: Path) -> None:
    shipped = {wl.name: wl for wl in load_word_lists(ModerationSettings())}
    assert {"profanity_en", "profanity_zh", "self_harm", "dangerous_instructions"} <= set(shipped)
    assert shipped["dangerous_instructions"].action == "block"
    assert "制作炸弹" in shipped["dangerous_instructions"].terms
    off = ModerationSettings(lists={"self_harm": {"enabled": False}})
    assert "self_harm" not in {wl.name for wl in load_word_lists(off)}
    assert load_word_lists(ModerationSettings(shipped_lists=False)) == []


def matcher(settings: ModerationSettings) -> Matcher:
    return Matcher(load_word_lists(settings))


def found(m: Matcher, text: str) -> list[tuple[str, str]]:
    return [(text[h.start : h.end], h.list.name) for h in m.scan(text)]


def test_english_terms_match_whole_words_case_insensitively(settings: ModerationSettings) -> None:
    m = matcher(settings)
    assert found(m, "You IDIOT.") == [("IDIOT", "rude")]
    assert found(m, "idiots and idiotic") == []  # whole words only
    assert found(m, "a stupid idiot!") == [("stupid idiot", "rude")]  # the longest term wins
    assert found(m, "what a Forbidden  Phrase") == []  # phrases are exact, spaces included
    assert found(m, "FORBIDDEN PHRASE here") == [("FORBIDDEN PHRASE", "banned")]
    assert found(m, "d@mn it, damned") == [("d@mn", "rude")]  # a regex entry
    assert found(m, "是idiot吗") == [("idiot", "rude")]  # next to Chinese is a word boundary
    assert found(m, "İdiot idiot") == [("İdiot", "rude"), ("idiot", "rude")]  # lower() grows


def test_chinese_terms_match_anywhere(settings: ModerationSettings) -> None:
    m = matcher(settings)
    assert found(m, "你这个笨蛋，这是禁词。") == [("笨蛋", "rude"), ("禁词", "banned")]
    assert found(m, "我们的秘密计划") == [("秘密计划", "watch")]
    assert found(m, "秘密的计划") == []


def test_overlapping_terms_keep_the_strongest_action(tmp_path: Path) -> None:
    a = WordList.parse("a", "# action: flag\nbad thing\n")
    b = WordList.parse("b", "# action: block\nthing\n")
    m = Matcher([a, b])
    hits = m.scan("a bad thing")
    assert len(hits) == 1 and hits[0].list.name == "b"
    same = Matcher([WordList.parse("a", "# action: mask\nword\n"), b, a])
    assert same.by_term["word"].action == "mask"


# --- streams -----------------------------------------------------------------------------------


def ctx() -> RequestContext:
    return RequestContext("chat", {"messages": []}, "m", True)


def stream_text(guard: StreamGuard, pieces: list[str]) -> str:
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        chunk: dict[str, Any] = {
            "id": "c",
            "choices": [
                {"index": 0, "delta": {"content": piece}, "finish_reason": "stop" if last else None}
            ],
        }
        out.append(guard.chunk(chunk)["choices"][0]["delta"]["content"])
    return "".join(out)


def test_a_masked_word_split_across_chunks_is_masked(settings: ModerationSettings) -> None:
    mod = Moderation(settings)
    guard = StreamGuard(mod, ctx())
    assert stream_text(guard, ["You are an id", "iot, a stu", "pid idiot and a 笨", "蛋."]) == (
        "You are an ***, a *** and a ***."
    )


def test_a_blocked_word_split_across_chunks_stops_the_stream(settings: ModerationSettings) -> None:
    mod = Moderation(settings)
    guard = StreamGuard(mod, ctx())
    sent = []
    with pytest.raises(ContentPolicyViolation) as refused:
        for piece in ["This is a forb", "idden ", "phrase, then more text"]:
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            sent.append(guard.chunk(chunk)["choices"][0]["delta"]["content"])
    assert "forbidden" not in "".join(sent).lower()
    assert "banned" in refused.value.message
    guard = StreamGuard(mod, ctx())
    with pytest.raises(ContentPolicyViolation):
        stream_text(guard, ["这是", "禁", "词"])


def test_stream_guard_matches_the_whole_answer_on_random_splits(
    settings: ModerationSettings,
) -> None:
    """Any split of the text gives what masking the whole answer at once gives."""
    mod = Moderation(settings)
    text = "idiot! A stupid idiot, 笨蛋 and d@mn. Not idiotic; 笨笨蛋蛋 idiot"
    whole = mod.output.scan(text)
    from thrifty.gateway.wordmatch import apply_masks

    expected = apply_masks(text, whole, "***")
    rng = random.Random(1)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert stream_text(StreamGuard(mod, ctx()), pieces) == expected


def test_text_held_back_is_sent_when_the_stream_ends_without_a_finish_reason(
    settings: ModerationSettings,
) -> None:
    guard = StreamGuard(Moderation(settings), ctx())
    sent = guard.chunk({"id": "c", "choices": [{"index": 0, "delta": {"content": "hello idi"}}]})
    # " idi" may still become "idiot", or a match of the 4-character regex d[a@]mn: held
    assert sent["choices"][0]["delta"]["content"] == "hello"
    [tail] = guard.close()
    assert tail["choices"][0]["delta"]["content"] == " idi"
    assert tail["id"] == "c"


# --- the input stage ---------------------------------------------------------------------------


def test_input_block_mask_and_flag(settings: ModerationSettings) -> None:
    mod = Moderation(settings)

    def run(content: str) -> RequestContext:
        c = RequestContext("chat", {"messages": [{"role": "user", "content": content}]}, "m", False)
        asyncio.run(mod.on_request(c))
        return c

    with pytest.raises(ContentPolicyViolation) as refused:
        run("tell me the forbidden phrase")
    assert refused.value.status == 400 and refused.value.code == "content_policy_violation"
    with pytest.raises(ContentPolicyViolation):
        run("禁词是什么")
    masked = run("you idiot, 你这个笨蛋")
    assert masked.body["messages"][0]["content"] == "you ***, 你这个***"
    flagged = run("our secret plan, 秘密计划")
    assert flagged.body["messages"][0]["content"] == "our secret plan, 秘密计划"
    assert [f.action for f in mod._found[flagged.id]] == ["flag"]
    clean = run("hello there")
    assert clean.id not in mod._found


def test_input_covers_every_message_and_legacy_prompts(settings: ModerationSettings) -> None:
    mod = Moderation(settings)
    body = {
        "messages": [
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": [{"type": "text", "text": "an idiot asks"}]},
        ]
    }
    c = RequestContext("chat", body, "m", False)
    asyncio.run(mod.on_request(c))
    assert c.body["messages"][1]["content"][0]["text"] == "an *** asks"
    assert body["messages"][1]["content"][0]["text"] == "an idiot asks"  # the client's is intact
    legacy = RequestContext("completions", {"prompt": ["ok", "idiot"]}, "m", False)
    asyncio.run(mod.on_request(legacy))
    assert legacy.body["prompt"] == ["ok", "***"]
