"""Export a trained model to GGUF for llama.cpp, and quantize GGUF files. All offline.

The pipeline: `thrifty.train.base.load_trained` (the adapter merged into its base, fp32) → a
Hugging Face directory in a temporary folder (tokenizer and chat template included) → llama.cpp's
own `convert_hf_to_gguf.py` to f16 / bf16 / q8_0 → `llama-quantize` for the k-quants. The
converter comes from the llama.cpp source that `scripts/build-llama-server.sh` keeps (the same
build that gives llama-server and llama-quantize), run with this interpreter and that source's
`gguf-py`, so the converter and the engine always agree on the format.

DIR may also be a plain Hugging Face model directory (config.json, weights, tokenizer): it is
converted as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "thrifty-train.json"
CONVERT_TYPES = ("f32", "f16", "bf16", "q8_0")  # what convert_hf_to_gguf.py writes itself
QUANTIZE_TYPES = (
    "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l",
    "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k", "q8_0", "f16", "bf16",
)  # fmt: skip
EXPORT_TYPES = tuple(dict.fromkeys([*CONVERT_TYPES, *QUANTIZE_TYPES]))
LLAMA_CPP_VERSION = "0.3.36"  # keep in step with scripts/build-llama-server.sh

Log = Callable[[str], None]


class ExportError(Exception):
    """Export or quantization cannot go on; the message says why and what to do."""


# -- finding the tools ----------------------------------------------------------------------------


def llama_cpp_source() -> Path:
    """The llama.cpp source tree with convert_hf_to_gguf.py, found where the build script put it."""
    candidates = []
    if os.environ.get("THRIFTY_LLAMA_CPP_SRC"):
        candidates.append(Path(os.environ["THRIFTY_LLAMA_CPP_SRC"]))
    cache = os.environ.get("THRIFTY_BUILD_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "thrifty"
    )
    version = os.environ.get("LLAMA_CPP_PYTHON_VERSION", LLAMA_CPP_VERSION)
    candidates.append(Path(cache) / f"llama.cpp-{version}" / "src")
    candidates += sorted(Path(cache).glob("llama.cpp-*/src"), reverse=True)
    for src in candidates:
        if (src / "convert_hf_to_gguf.py").is_file():
            return src
    raise ExportError(
        "llama.cpp's convert_hf_to_gguf.py not found: run `make engine` (it keeps the llama.cpp "
        "source under ~/.cache/thrifty), or set $THRIFTY_LLAMA_CPP_SRC to a llama.cpp checkout"
    )


def find_llama_quantize() -> str:
    """llama-quantize: $THRIFTY_LLAMA_QUANTIZE, next to the interpreter, then PATH."""
    for candidate in (
        os.environ.get("THRIFTY_LLAMA_QUANTIZE"),
        str(Path(sys.executable).parent / "llama-quantize"),
        shutil.which("llama-quantize"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ExportError(
        "llama-quantize not found: run `make engine` (it installs it next to llama-server), "
        "or set $THRIFTY_LLAMA_QUANTIZE"
    )


# -- quantize -------------------------------------------------------------------------------------


def quantize(src: Path, out: Path, quant: str, log: Log = lambda _: None) -> Path:
    """`llama-quantize src out QUANT` (re-quantizing an already quantized file is allowed)."""
    quant = quant.lower()
    if quant not in QUANTIZE_TYPES:
        raise ExportError(f"unknown quantization {quant!r}; one of {', '.join(QUANTIZE_TYPES)}")
    if src.resolve() == out.resolve():
        raise ExportError("the output would overwrite the input: give another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    threads = str(os.cpu_count() or 1)
    cmd = [find_llama_quantize(), "--allow-requantize", str(src), str(partial), quant.upper()]
    log(f"quantizing {src.name} to {quant}")
    _run([*cmd, threads], "llama-quantize")
    partial.replace(out)
    return out


def default_quantized_path(src: Path, quant: str, home: Path, bundled: bool) -> Path:
    """``model.f16.gguf`` → ``model.q4_k_m.gguf``, beside it (bundled models: in home/models)."""
    stem = src.stem
    head, _, tail = stem.rpartition(".")
    if head and tail.lower() in EXPORT_TYPES:
        stem = head
    folder = home / "models" if bundled else src.parent
    return folder / f"{stem}.{quant.lower()}.gguf"


# -- export ---------------------------------------------------------------------------------------


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ExportError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") not in ("adapter", "full"):
        raise ExportError(f"{path}: `format` must be adapter or full")
    return data


def export_gguf(
    model_dir: Path,
    home: Path,
    quant: str = "q8_0",
    out: Path | None = None,
    log: Log = lambda _: None,
) -> Path:
    """Write `model_dir` (a `thrifty finetune` output or an HF model directory) as one GGUF."""
    quant = quant.lower()
    if quant not in EXPORT_TYPES:
        raise ExportError(f"unknown quantization {quant!r}; one of {', '.join(EXPORT_TYPES)}")
    manifest = read_manifest(model_dir)
    if manifest is None and not (model_dir / "config.json").is_file():
        raise ExportError(
            f"{model_dir} is neither a `thrifty finetune` output ({MANIFEST}) nor a Hugging Face "
            "model directory (config.json)"
        )
    out = out or model_dir / f"{model_dir.resolve().name}.{quant}.gguf"
    source = llama_cpp_source()
    direct = quant in CONVERT_TYPES
    steps = (1 if manifest and manifest["format"] == "adapter" else 0) + 1 + (0 if direct else 1)
    step = iter(range(1, steps + 1))

    def say(text: str) -> None:
        log(f"[{next(step)}/{steps}] {text}")

    with tempfile.TemporaryDirectory(prefix="thrifty-export-") as tmp:
        hf_dir = _hf_dir(model_dir, manifest, home, Path(tmp), say)
        gguf = out if direct else Path(tmp) / "model.f16.gguf"
        outtype = quant if direct else "f16"
        say(f"converting to GGUF ({outtype}) with {source / 'convert_hf_to_gguf.py'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        target = gguf.with_name(gguf.name + ".partial") if direct else gguf
        convert(source, hf_dir, target, quant if direct else "f16")
        if direct:
            target.replace(out)
        else:
            quantize(gguf, out, quant, say)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


LORA_TYPES = ("f32", "f16", "bf16", "q8_0")  # what convert_lora_to_gguf.py writes


def export_lora_gguf(
    model_dir: Path,
    home: Path,
    outtype: str = "f16",
    out: Path | None = None,
    log: Log = lambda _: None,
) -> tuple[Path, str]:
    """Write a `thrifty finetune` LoRA run as a GGUF adapter; returns it and the base's name.

    llama-server loads it beside the base (`--lora`), so many students share one copy of the
    base. The converter needs only the base's config, taken from the base's GGUF header here.
    """
    outtype = outtype.lower()
    if outtype not in LORA_TYPES:
        raise ExportError(f"an adapter is written as one of {', '.join(LORA_TYPES)}, not {outtype}")
    manifest = read_manifest(model_dir)
    if manifest is None or manifest["format"] != "adapter":
        raise ExportError(
            f"{model_dir} is not a LoRA run of `thrifty finetune` (format adapter in {MANIFEST}): "
            "export it as a whole model instead"
        )
    out = out or model_dir / f"{model_dir.resolve().name}.lora.{outtype}.gguf"
    source = llama_cpp_source()
    base = str(manifest.get("base") or "")
    base_path = Path(str(manifest.get("base_path") or base))
    with tempfile.TemporaryDirectory(prefix="thrifty-export-") as tmp:
        log(f"[1/2] reading the config of {base or base_path}")
        config_dir = _base_config(base, base_path, home, Path(tmp) / "base")
        log(f"[2/2] converting the adapter with {source / 'convert_lora_to_gguf.py'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        cmd = [
            sys.executable,
            str(source / "convert_lora_to_gguf.py"),
            str(model_dir / "adapter"),
            "--base", str(config_dir),
            "--outtype", outtype,
            "--outfile", str(partial),
        ]  # fmt: skip
        _run(cmd, "convert_lora_to_gguf.py", env=_converter_env(source))
        partial.replace(out)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), a LoRA adapter of {base}")
    return out, base


def _base_config(base: str, base_path: Path, home: Path, tmp: Path) -> Path:
    """A directory with the base's config.json (a HF directory as it is; a GGUF's, derived)."""
    if base_path.is_dir() and (base_path / "config.json").is_file():
        return base_path
    from thrifty.backends.models import ModelUnavailable, resolve_model

    try:
        gguf = base_path if base_path.is_file() else resolve_model(base, home)
    except ModelUnavailable as exc:
        raise ExportError(f"the adapter's base is not here: {exc}") from None
    try:
        from transformers import AutoConfig
    except ImportError:
        raise ExportError("reading the base's config needs pip install 'thrifty[train]'") from None
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    if not getattr(config, "architectures", None):
        config.architectures = [f"{type(config).__name__.removesuffix('Config')}ForCausalLM"]
    config.save_pretrained(tmp)
    return tmp


def _converter_env(source: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(source / "gguf-py"), os.environ.get("PYTHONPATH")) if p
        ),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _hf_dir(
    model_dir: Path, manifest: dict[str, Any] | None, home: Path, tmp: Path, say: Log
) -> Path:
    """An HF directory to convert: the model as it is, or the adapter merged into its base."""
    if manifest is None:
        return model_dir
    template = manifest.get("chat_template")
    if manifest["format"] == "full":
        return _with_template(model_dir / "model", template, tmp / "hf")
    say(f"merging the adapter into {manifest.get('base') or 'its base model'}")
    try:
        from thrifty.train.base import load_trained
    except ImportError as exc:
        raise ExportError(
            f"cannot load the trained model ({exc}): pip install 'thrifty[train]'"
        ) from None
    from thrifty.backends.models import ModelUnavailable
    from thrifty.train.base import TrainedModelError

    try:
        model, tokenizer = load_trained(model_dir, home)
    except (TrainedModelError, ModelUnavailable, FileNotFoundError) as exc:
        raise ExportError(f"cannot load the trained model: {exc}") from None
    if template and _is_jinja(template) and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = template
    hf = tmp / "hf"
    model.save_pretrained(hf, safe_serialization=True)
    tokenizer.save_pretrained(hf)
    return hf


def _with_template(src: Path, template: str | None, tmp: Path) -> Path:
    """`src`, or a linked copy of it that carries the manifest's chat template."""
    if not src.is_dir():
        raise ExportError(f"{src} is missing: the manifest says the full model is there")
    has_template = (src / "chat_template.jinja").is_file() or "chat_template" in _json(
        src / "tokenizer_config.json"
    )
    if has_template or not template or not _is_jinja(template):
        return src
    tmp.mkdir(parents=True)
    for item in src.iterdir():
        (tmp / item.name).symlink_to(item.resolve())
    (tmp / "chat_template.jinja").write_text(template, encoding="utf-8")
    return tmp


def _is_jinja(template: str) -> bool:
    # a built-in name (chatml, llama3) means nothing inside a GGUF; `models add --chat-template`
    return "{" in template


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def convert(source: Path, hf_dir: Path, out: Path, outtype: str) -> None:
    """Run llama.cpp's converter on `hf_dir` with this interpreter, offline."""
    env = _converter_env(source)
    cmd = [
        sys.executable,
        str(source / "convert_hf_to_gguf.py"),
        str(hf_dir),
        "--outtype", outtype,
        "--outfile", str(out),
    ]  # fmt: skip
    _run(cmd, "convert_hf_to_gguf.py", env=env)


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise ExportError(f"{what} could not start: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ExportError(f"{what} failed (exit {done.returncode}):\n{tail}")
