"""Training data: both JSONL shapes, prompt tokens masked out of the loss, bad lines named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from thrifty.train.data import IGNORE, DataError, collate, encode, encode_all, read_chats
from train.tiny_models import write_jsonl


def _answer_text(tokenizer: Any, ids: list[int], labels: list[int]) -> str:
    return str(
        tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != IGNORE])
    )


def test_reads_both_shapes_into_chats(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"prompt": "法国的首都是哪里？", "completion": "巴黎。"},
            {"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Capital of Peru?"},
                          {"role": "assistant", "content": [{"type": "text", "text": "Lima"}]}]},
        ],
    )  # fmt: skip
    path.write_text(path.read_text() + "\n\n")  # blank lines are skipped
    assert read_chats(path) == [
        [{"role": "user", "content": "法国的首都是哪里？"},
         {"role": "assistant", "content": "巴黎。"}],
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "Capital of Peru?"},
         {"role": "assistant", "content": "Lima"}],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("{not json", "line 2"),
        ('["a list"]', "JSON object"),
        ('{"text": "hi"}', '{"messages": [...]}'),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant turn"),
        ('{"messages": [{"role": "wizard", "content": "hi"}]}', "role"),
        ('{"prompt": "hi", "completion": 3}', "string content"),
        ('{"messages": []}', "non-empty"),
    ],
)
def test_bad_lines_are_rejected_naming_file_and_line(
    tmp_path: Path, line: str, complaint: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n' + line + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl line 2") as caught:
        read_chats(path)
    assert complaint in str(caught.value)


def test_missing_and_empty_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_chats(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no examples"):
        read_chats(tmp_path / "empty.jsonl")


def test_chat_template_prompt_tokens_are_masked(tiny: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    chat = [
        {"role": "user", "content": "中国的首都是哪里？"},
        {"role": "assistant", "content": "北京。"},
        {"role": "user", "content": "What is 2 plus 3?"},
        {"role": "assistant", "content": "5"},
    ]
    example = encode(tokenizer, chat, max_len=512)
    assert len(example.input_ids) == len(example.labels)
    assert tokenizer.decode(example.input_ids) == tokenizer.apply_chat_template(
        chat, tokenize=False
    )
    # both answers and their end-of-turn marks are trained on; nothing of the prompts is
    assert _answer_text(tokenizer, example.input_ids, example.labels) == (
        "北京。<|im_end|>\n5<|im_end|>\n"
    )
    assert example.labels[0] == IGNORE


def test_base_model_without_template_uses_question_answer_layout(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    chat = [
        {"role": "user", "content": "Capital of Japan?"},
        {"role": "assistant", "content": "Tokyo"},
    ]
    example = encode(tokenizer, chat, max_len=512)
    assert tokenizer.decode(example.input_ids) == "Question: Capital of Japan?\nAnswer: Tokyo\n\n"
    assert _answer_text(tokenizer, example.input_ids, example.labels) == " Tokyo\n\n"


def test_max_len_cuts_and_answerless_examples_are_dropped(tiny: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Lima"}]
    long = [{"role": "user", "content": "Rome " * 200}, {"role": "assistant", "content": "Rome"}]
    examples, dropped = encode_all(tokenizer, [short, long], max_len=40)
    assert dropped == 1 and len(examples) == 1
    assert len(encode(tokenizer, long, max_len=40).input_ids) == 40
    with pytest.raises(DataError, match="max-len"):
        encode_all(tokenizer, [long], max_len=40)


def test_collate_right_pads_with_masked_labels(tiny: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    chats = [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Lima"}],
        [
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "开罗是埃及的"},
        ],
    ]
    examples, _ = encode_all(tokenizer, chats, max_len=512)
    batch = collate(examples, pad_id=0)
    longest = max(len(e.input_ids) for e in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, longest)
    short = len(examples[0].input_ids)
    assert batch["attention_mask"][0].tolist() == [1] * short + [0] * (longest - short)
    assert batch["labels"][0, short:].tolist() == [IGNORE] * (longest - short)
