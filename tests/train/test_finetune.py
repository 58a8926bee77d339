"""The three methods end to end on tiny models: outputs per the contract, losses, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fakes.upstream import start_upstream
from thrifty.train import trainer
from thrifty.train.base import load_base, load_trained
from thrifty.train.progressive import blocks, progressive_stages, trainable_share
from thrifty.train.trainer import FinetuneConfig, TrainError, finetune
from train.tiny_models import CITIES, write_jsonl

MANIFEST_KEYS = {
    "method", "base", "base_path", "format", "chat_template",
    "steps", "final_loss", "eval_loss", "wall_s", "args",
}  # fmt: skip


def _run(base: Path, data: Path, out: Path, **options: Any) -> tuple[dict[str, Any], list[str]]:
    said: list[str] = []
    config = FinetuneConfig(base=str(base), data=data, out=out, batch_size=4, **options)
    manifest = finetune(config, out.parent, said.append)
    # these runs are short on purpose; the too-short warning has its own test (test_short_run)
    return manifest, [line for line in said if not line.startswith("warning:")]


def _log(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "train-log.jsonl").read_text().splitlines()]


def _lora_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "adapter" / "adapter_model.safetensors")


def test_lora_trains_the_loss_falls_and_the_outputs_follow_the_contract(
    tiny: Path, train_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    manifest, _ = _run(tiny, train_file, out, epochs=6, lr=2e-2, eval_data=train_file)
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["method"] == "lora" and manifest["format"] == "adapter"
    assert manifest["base"] == str(tiny) and manifest["base_path"] == str(tiny.resolve())
    assert manifest["chat_template"].startswith("{% for m in messages %}")
    assert manifest["steps"] == 24  # 16 examples / batch 4 × 6 epochs
    assert json.loads((out / "thrifty-train.json").read_text()) == manifest
    losses = [row["loss"] for row in _log(out)]
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.05
    assert isinstance(manifest["eval_loss"], float)
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert not (out / "checkpoints").exists()  # a finished run is not resumed
    merged, _ = load_trained(out, tmp_path)
    base, _ = load_base(str(tiny), tmp_path)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    ids = torch.tensor([[5, 6, 7, 8]])
    assert not torch.allclose(merged(ids).logits, base(ids).logits)


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("stop", "resumes_at"), [(KeyboardInterrupt, 7), (_Stop, 6)])
def test_a_stopped_run_resumes_to_the_same_weights(
    tiny: Path,
    train_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop: type[BaseException],
    resumes_at: int,
) -> None:
    """Ctrl-C saves a checkpoint where it stops; a crash resumes from the last periodic one."""
    options: dict[str, Any] = {"epochs": 3, "lr": 1e-2, "save_every": 3}
    _run(tiny, train_file, tmp_path / "whole", **options)

    real_log = trainer._log

    def stop_at_step_7(path: Path, progress: Any, *args: Any) -> None:
        real_log(path, progress, *args)
        if progress.step == 7:
            raise stop()

    out = tmp_path / "stopped"
    monkeypatch.setattr(trainer, "_log", stop_at_step_7)
    with pytest.raises(stop):
        _run(tiny, train_file, out, **options)
    monkeypatch.setattr(trainer, "_log", real_log)
    with pytest.raises(TrainError, match="--resume"):
        _run(tiny, train_file, out, **options)
    with pytest.raises(TrainError, match="lr"):
        _run(tiny, train_file, out, resume=True, **{**options, "lr": 1e-3})

    manifest, said = _run(tiny, train_file, out, resume=True, **options)
    assert f"(step {resumes_at})" in said[0]
    assert manifest["steps"] == 12 and [row["step"] for row in _log(out)] == list(range(1, 13))
    whole, resumed = _lora_weights(tmp_path / "whole"), _lora_weights(out)
    assert whole.keys() == resumed.keys()
    for name, tensor in whole.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6)
    with pytest.raises(TrainError, match="finished"):
        _run(tiny, train_file, out, resume=True, **options)


def test_progressive_stage_one_changes_only_the_last_two_blocks(
    tiny: Path, train_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    manifest, said = _run(
        tiny, train_file, out, method="progressive", stage_steps=(3, 0, 0), lr=1e-2
    )
    assert manifest["format"] == "full" and manifest["steps"] == 3
    assert said == ["stage 1-last-2-blocks: 37% of the parameters learn"]
    trained, _ = load_trained(out, tmp_path)
    base, _ = load_base(str(tiny), tmp_path)
    top = {
        name
        for name, _ in base.named_parameters()
        if name.startswith(("model.layers.2.", "model.layers.3."))
    }
    before = dict(base.named_parameters())
    assert top
    for name, param in trained.named_parameters():
        if name in top:
            assert not torch.equal(param, before[name]), name
        else:
            assert torch.equal(param, before[name]), name  # bit-identical
    config = json.loads((out / "model" / "config.json").read_text())
    assert "quantization_config" not in config
    assert (out / "model" / "tokenizer.json").is_file()


def test_progressive_stages_unfreeze_more_and_more(tiny: Path, tmp_path: Path) -> None:
    model, _ = load_base(str(tiny), tmp_path)
    stages = progressive_stages((1, 4, 1), 1e-4, 1e-5, 5e-6, 1, 4)
    shares = []
    for stage in stages:
        stage.unfreeze(model)
        shares.append(trainable_share(model))
    assert shares[0] < shares[1] and shares[1] >= 0.5 and shares[2] == 1.0
    stages[0].unfreeze(model)
    assert [b.self_attn.q_proj.weight.requires_grad for b in blocks(model)] == [0, 0, 1, 1]
    assert [stages[1].lr(i) for i in range(4)] == pytest.approx([1e-5, 7e-6, 4e-6, 1e-6])
    assert stages[2].grad_accum == 4


def test_progressive_runs_all_three_stages(tiny: Path, train_file: Path, tmp_path: Path) -> None:
    manifest, said = _run(tiny, train_file, tmp_path / "run", method="progressive", epochs=3)
    assert [line.split(":")[0] for line in said] == [
        "stage 1-last-2-blocks", "stage 2-top-half", "stage 3-full",
    ]  # fmt: skip
    assert manifest["steps"] == 4 + 4 + 1  # 12 micro-batches in thirds; stage 3 accumulates 4


def test_kd_with_a_teacher_sharing_the_tokenizer_distills_logits(
    tiny: Path, tiny_teacher: Path, train_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    manifest, said = _run(
        tiny, train_file, out, method="kd", teacher=str(tiny_teacher), epochs=2, lr=1e-2
    )
    assert said[0].startswith("kd: logit distillation")
    assert manifest["args"]["kd_mode"] == "logits" and manifest["format"] == "full"
    assert (out / "model" / "model.safetensors").is_file()
    assert not (out / "teacher-answers.jsonl").exists()


def test_kd_with_another_tokenizer_falls_back_to_the_teachers_answers(
    tiny: Path, other_vocab_teacher: Path, train_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    manifest, said = _run(
        tiny,
        train_file,
        out,
        method="kd",
        teacher=str(other_vocab_teacher),
        teacher_max_tokens=6,
        max_len=64,
    )
    assert "vocab mismatch" in said[0] and "sequence-level" in said[0]
    assert manifest["args"]["kd_mode"] == "sequence"
    relabelled = [
        json.loads(line) for line in (out / "teacher-answers.jsonl").read_text().splitlines()
    ]
    assert len(relabelled) == 2 * len(CITIES)
    assert relabelled[0]["messages"][0] == {
        "role": "user", "content": f"What is the capital of {CITIES[0][0]}?",
    }  # fmt: skip


def test_kd_with_an_api_teacher_trains_on_its_answers(tiny: Path, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"prompt": f"echo:{city}", "completion": "?"} for _, city, _, _ in CITIES],
    )
    out = tmp_path / "run"
    with start_upstream() as upstream:
        manifest, said = _run(
            tiny, data, out, method="kd", teacher="fake-chat", teacher_url=upstream.url
        )
    assert "behind an API" in said[0]
    assert manifest["args"]["kd_mode"] == "sequence"
    assert "teacher_api_key" not in manifest["args"]
    answers = [
        json.loads(line)["messages"][1]["content"]
        for line in (out / "teacher-answers.jsonl").open()
    ]
    assert answers == [city for _, city, _, _ in CITIES]
