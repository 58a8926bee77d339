"""The intent-classification data set of the acceptance run (examples/intent)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from thrifty.evals.suites import load_suite
from thrifty.train import intent

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "intent"
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _rows(name: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (FOLDER / name).read_text(encoding="utf-8").splitlines()]


def _pairs(name: str) -> list[tuple[str, str]]:
    pairs = []
    for row in _rows(name):
        system, user, answer = row["messages"]
        assert system == {"role": "system", "content": intent.SYSTEM}
        assert (user["role"], answer["role"]) == ("user", "assistant")
        pairs.append((user["content"], answer["content"]))
    return pairs


def test_shipped_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    intent.write(tmp_path)
    for name in ("train.jsonl", "test.jsonl", "intent.suite.jsonl"):
        assert (tmp_path / name).read_bytes() == (FOLDER / name).read_bytes(), name


def test_size_labels_and_language_mix() -> None:
    train, test = _pairs("train.jsonl"), _pairs("test.jsonl")
    assert len(train) >= 500 and len(test) >= 100
    assert 8 <= len(intent.LABELS) <= 12
    for pairs in (train, test):
        labels = Counter(label for _, label in pairs)
        assert set(labels) == set(intent.LABELS)  # the answer is exactly a label
        assert max(labels.values()) == min(labels.values())  # balanced
        chinese = sum(bool(_HAN.search(text)) for text, _ in pairs)
        assert chinese == len(pairs) // 2  # half Chinese, half English
        assert len({text for text, _ in pairs}) == len(pairs)
        for label in intent.LABELS:  # each language carries every label equally
            zh = sum(1 for t, lab in pairs if lab == label and _HAN.search(t))
            assert zh == labels[label] // 2
    assert all(label in intent.SYSTEM for label in intent.LABELS)


def test_no_test_phrasing_is_in_train() -> None:
    train_texts = {text for text, _ in _pairs("train.jsonl")}
    test_texts = {text for text, _ in _pairs("test.jsonl")}
    assert not train_texts & test_texts
    train_rows, test_rows = intent.build()
    assert not {r.template for r in train_rows} & {r.template for r in test_rows}


def test_the_eval_suite_scores_the_test_split_by_exact_match() -> None:
    suite = load_suite(str(FOLDER / "intent.suite.jsonl"))
    assert suite.name == "intent" and len(suite.items) == len(_pairs("test.jsonl"))
    assert {item.scorer for item in suite.items} == {"exact"}
    item = suite.items[0]
    assert item.messages[0] == {"role": "system", "content": intent.SYSTEM}
    text, label = _pairs("test.jsonl")[0]
    assert (item.messages[-1]["content"], item.expected) == (text, label)


def test_generation_is_seeded() -> None:
    assert intent.build(seed=3) == intent.build(seed=3)
    assert intent.build(seed=3) != intent.build(seed=4)
