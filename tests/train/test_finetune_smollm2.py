"""LoRA on the real bundled SmolLM2-135M-Instruct, read from its Q4_1 GGUF (dequantized), then
exported to GGUF with llama.cpp's converter and served by `thrifty serve`: the whole loop."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from support import ThriftyServer
from thrifty.cli import main
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

    # the adapter merged into its base, as one GGUF that the gateway serves by name
    home = tmp_path / "home"
    result = CliRunner().invoke(
        main,
        ["export", str(out), "--to", "gguf", "--quant", "q8_0", "--name", "student"],
        env={"THRIFTY_HOME": str(home)},
    )
    assert result.exit_code == 0, result.output
    with ThriftyServer("-m", "student", home=home) as server:
        reply = httpx.post(
            server.base_url + "/chat/completions",
            json={
                "model": "local",
                "messages": [{"role": "user", "content": "你好"}],
                "max_tokens": 16,  # four steps of training do not teach it when to stop
            },
            timeout=120,
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"].strip()
