"""Fixtures for the trainer's tests: tiny models built once per session (tiny_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.tiny_models import build_tiny, chats, write_jsonl


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny chat model (ChatML template): the student, and the base of most tests."""
    return build_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another tiny model with the same tokenizer: logit distillation applies."""
    return build_tiny(tmp_path_factory.mktemp("teacher"), seed=1, layers=2)


@pytest.fixture(scope="session")
def other_vocab_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose tokenizer differs: logit distillation cannot apply."""
    return build_tiny(tmp_path_factory.mktemp("other"), vocab_size=330, seed=2, layers=2)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base model without a chat template: the Question/Answer layout applies."""
    return build_tiny(tmp_path_factory.mktemp("base"), template=None)


@pytest.fixture()
def train_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", chats())
