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


def load_base(
    base: str, home: Path, *, cache: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model in fp32 (GGUF dequantized, no quantization_config) and its tokenizer.

    ``cache``: keep a GGUF base, once dequantized, as a Hugging Face directory under
    ``home/cache/bases`` (fp32, the same weights), so the next run loads it in seconds instead
    of rebuilding the tokenizer and dequantizing again (the autopilot trains on one base often).
    """
    offline()
    path = resolve_base(base, home)
    if path.is_dir():
        return _load({"pretrained_model_name_or_path": path})
    kept = _cached(path, home) if cache else None
    if kept is not None and (kept / "config.json").is_file():
        return _load({"pretrained_model_name_or_path": kept})
    model, tokenizer = _load({"pretrained_model_name_or_path": path.parent, "gguf_file": path.name})
    if kept is not None:
        _keep(model, tokenizer, kept)
    return model, tokenizer


def _load(where: dict[str, Any]) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(**where)
    model = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    return _without_quantization(model), tokenizer


def _cached(gguf: Path, home: Path) -> Path:
    st = gguf.stat()
    return home / "cache" / "bases" / f"{gguf.stem}-{st.st_size}-{st.st_mtime_ns}"


def _keep(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    """Save into a temporary sibling, then rename: a reader never sees half a copy."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)
    except OSError:  # another process kept it first, or the disk is full: load from GGUF next
        shutil.rmtree(tmp, ignore_errors=True)


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
