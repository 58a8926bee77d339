"""`thrifty export` and `thrifty quantize` on a tiny Llama made here, then served by thrifty.

The model (2 layers, 64 wide) and its tokenizer (a byte-fallback BPE trained on a few lines, the
Llama layout llama.cpp converts without knowing it) are built in the test: nothing comes from a
hub. Export runs llama.cpp's own converter and llama-quantize, as users get them from `make engine`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from support import ThriftyServer
from thrifty.backends.models import resolve_model
from thrifty.cli import main

pytestmark = pytest.mark.slow

TEMPLATE = (
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
CORPUS = [
    "where is my order", "I want a refund", "cancel my order please", "我的订单到哪了",
    "申请退款", "取消订单", "the invoice is wrong", "转人工客服", "user: assistant: system:",
]  # fmt: skip


def _tiny_llama(folder: Path, chat_template: str | None) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    bpe.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    bpe.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))]
    bpe.train_from_iterator(
        CORPUS * 20,
        trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_llama(tmp_path_factory.mktemp("hf"), TEMPLATE)


def _gguf_metadata(path: Path) -> dict[str, object]:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    out: dict[str, object] = {}
    for name in ("tokenizer.chat_template", "general.file_type", "general.architecture"):
        field = reader.fields.get(name)
        if field is not None:
            out[name] = field.contents()
    return out


def _cli(home: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main, list(args), env={"THRIFTY_HOME": str(home), "THRIFTY_CONFIG": ""}
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def plain_f16(hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported once, as f16; the tests below reuse it."""
    folder = tmp_path_factory.mktemp("plain")
    out = folder / "tiny.f16.gguf"
    output = _cli(
        folder, "export", str(hf_dir), "--to", "gguf", "--quant", "f16", "--out", str(out)
    )
    assert "[1/1] converting to GGUF (f16)" in output
    return out


def test_export_an_hf_directory_keeps_its_chat_template(plain_f16: Path) -> None:
    meta = _gguf_metadata(plain_f16)
    assert meta["tokenizer.chat_template"] == TEMPLATE
    assert meta["general.architecture"] == "llama"
    assert meta["general.file_type"] == 1  # MOSTLY_F16
    assert not list(plain_f16.parent.glob("*.partial"))


def test_export_a_full_run_with_the_manifests_template_and_quantize(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = tmp_path / "run"
    _tiny_llama(run / "model", chat_template=None)  # the template lives in the manifest only
    (run / "thrifty-train.json").write_text(
        json.dumps({"format": "full", "base": "tiny", "base_path": "", "chat_template": TEMPLATE})
    )
    output = _cli(tmp_path, "export", str(run), "--quant", "q4_k_m")
    assert "[1/2] converting to GGUF (f16)" in output and "[2/2] quantizing" in output
    out = run / "run.q4_k_m.gguf"
    meta = _gguf_metadata(out)
    assert meta["tokenizer.chat_template"] == TEMPLATE
    assert meta["general.file_type"] == 15  # MOSTLY_Q4_K_M


def test_export_merges_an_adapter_through_load_trained(
    hf_dir: Path, plain_f16: Path, tmp_path: Path
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    base = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.fill_(0.5)  # a merge that changes the weights
    lora.save_pretrained(run / "adapter")
    manifest = {"format": "adapter", "base": str(hf_dir), "base_path": str(hf_dir)}
    (run / "thrifty-train.json").write_text(json.dumps({**manifest, "chat_template": TEMPLATE}))
    out = tmp_path / "merged.f16.gguf"
    output = _cli(tmp_path, "export", str(run), "--quant", "f16", "--out", str(out))
    assert "[1/2] merging the adapter" in output
    assert _gguf_metadata(out)["tokenizer.chat_template"] == TEMPLATE

    from gguf import GGUFReader

    merged = {t.name: t for t in GGUFReader(out).tensors}
    original = {t.name: t for t in GGUFReader(plain_f16).tensors}
    q = "blk.0.attn_q.weight"
    assert (merged[q].data != original[q].data).any()  # the adapter is in
    k = "blk.0.attn_k.weight"
    assert (merged[k].data == original[k].data).all()  # and only where it was


@pytest.fixture()
def served(plain_f16: Path, tmp_path: Path) -> Iterator[ThriftyServer]:
    home = tmp_path / "home"
    f16 = tmp_path / plain_f16.name
    f16.write_bytes(plain_f16.read_bytes())
    output = _cli(home, "quantize", str(f16), "--quant", "q4_k_m", "--name", "tiny-student")
    assert "registered tiny-student" in output
    assert resolve_model("tiny-student", home) == (tmp_path / "tiny.q4_k_m.gguf").resolve()
    config = {"local": {"system_prompt": None, "parallel": 1, "ctx_size": 256}}
    with ThriftyServer("-m", "tiny-student", config=config, home=home) as server:
        yield server


def test_an_exported_student_is_served_by_name(served: ThriftyServer) -> None:
    models = httpx.get(served.base_url + "/models", timeout=10).json()
    assert "tiny-student" in {m["id"] for m in models["data"]}
    reply = httpx.post(
        served.base_url + "/chat/completions",
        json={
            "model": "tiny-student",
            "messages": [{"role": "user", "content": "退款"}],
            "max_tokens": 4,
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-thrifty-route"] == "local"
    assert reply.json()["usage"]["completion_tokens"] >= 1


def test_quantize_refuses_unknown_types_and_missing_models(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["quantize", "nope", "--quant", "q4_k_m"], env={"THRIFTY_HOME": str(tmp_path)}
    )
    assert result.exit_code == 1 and "no local model 'nope'" in result.output
    fake = tmp_path / "x.gguf"
    fake.write_bytes(b"GGUF")
    result = CliRunner().invoke(
        main, ["quantize", str(fake), "--quant", "q9_z"], env={"THRIFTY_HOME": str(tmp_path)}
    )
    assert result.exit_code == 1 and "unknown quantization" in result.output
