"""Load base and trained models as plain fp32 Hugging Face models, offline.

A base is a bundled name (`smollm2-135m`), a GGUF file, or a Hugging Face model directory.
transformers reads GGUF by dequantizing it, but the model it returns still carries a GGUF
`quantization_config` that `save_pretrained` and PEFT trip over; `load_base` rebuilds the model
from its config without it. `thrifty export` imports `load_base` and `load_trained`.

The output directory of `thrifty finetune` (the contract `load_trained` reads):

    DIR/thrifty-train.json   {"method", "base", "base_path", "format": "adapter"|"full",
                              "chat_template", "steps", "final_loss", "eval_loss", "wall_s", "args"}
    DIR/adapter/             format "adapter": a PEFT LoRA adapter (save_pretrained)
    DIR/model/               format "full": safetensors weights + config + tokenizer
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.backends.models import resolve_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MANIFEST = "thrifty-train.json"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"


class TrainedModelError(Exception):
    """An output directory that is not (or not yet) a finished `thrifty finetune` run."""


def offline() -> None:
    """Forbid every hub download: the weights come from disk or not at all."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def resolve_base(base: str, home: Path) -> Path:
    """The GGUF file or Hugging Face directory behind a base name or path."""
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{base}: a directory without config.json (not a HF model)")
        return path
    return resolve_model(base, home)  # a bundled name or a GGUF file; raises ModelUnavailable


def load_base(base: str, home: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model in fp32 (GGUF dequantized, no quantization_config) and its tokenizer."""
    offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base(base, home)
    if path.is_dir():
        where: dict[str, Any] = {"pretrained_model_name_or_path": path}
    else:
        where = {"pretrained_model_name_or_path": path.parent, "gguf_file": path.name}
    tokenizer = AutoTokenizer.from_pretrained(**where)
    model = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    return _without_quantization(model), tokenizer


def _without_quantization(model: PreTrainedModel) -> PreTrainedModel:
    """A fresh model from the config minus `quantization_config`, holding the same weights."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if getattr(config, "quantization_config", None) is None:
        return model
    del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """The manifest of a finished run; a clear error when the directory is not one."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise TrainedModelError(f"{out_dir}: no {MANIFEST} (not a finished `thrifty finetune` run)")
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest


def load_trained(out_dir: Path, home: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The fine-tuned model in fp32: base + LoRA merged for adapters, the saved model for full."""
    offline()
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if manifest["format"] == "adapter":
        from peft import PeftModel

        base = manifest["base_path"]
        if not Path(base).exists():  # moved machines: a bundled name still resolves
            base = manifest["base"]
        model, tokenizer = load_base(base, home)
        merged = PeftModel.from_pretrained(model, out_dir / ADAPTER_DIR).merge_and_unload()
        return merged, tokenizer
    if manifest["format"] == "full":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = out_dir / MODEL_DIR
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), tokenizer
    raise TrainedModelError(f"{out_dir}: unknown format {manifest['format']!r} in {MANIFEST}")
