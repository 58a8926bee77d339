"""LoRA on the real bundled SmolLM2-135M-Instruct, read from its Q4_1 GGUF (dequantized)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thrifty.train.trainer import FinetuneConfig, finetune
from train.tiny_models import chats, write_jsonl

pytestmark = pytest.mark.slow


def test_lora_on_the_bundled_smollm2_lowers_the_loss(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", chats())  # 16 short examples, half Chinese
    out = tmp_path / "run"
    config = FinetuneConfig(
        base="smollm2-135m", data=data, out=out, epochs=2, lr=2e-3, batch_size=8, max_len=64
    )
    manifest = finetune(config, tmp_path, say=lambda text: None)
    assert manifest["format"] == "adapter" and manifest["base_path"].endswith(".gguf")
    assert "<|im_start|>" in manifest["chat_template"]
    losses = [json.loads(line)["loss"] for line in (out / "train-log.jsonl").open()]
    assert len(losses) == 4
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2  # epoch 2 below epoch 1
