"""Tiny models for the trainer's tests: a Llama with hidden size 32 and a BPE tokenizer trained
here on a few hundred lines (English and Chinese), saved as Hugging Face directories. Each test
trains in seconds, offline. The fixtures that build them are in conftest.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CITIES = [
    ("France", "Paris", "法国", "巴黎"),
    ("Japan", "Tokyo", "日本", "东京"),
    ("China", "Beijing", "中国", "北京"),
    ("Italy", "Rome", "意大利", "罗马"),
    ("Egypt", "Cairo", "埃及", "开罗"),
    ("Spain", "Madrid", "西班牙", "马德里"),
    ("Kenya", "Nairobi", "肯尼亚", "内罗毕"),
    ("Peru", "Lima", "秘鲁", "利马"),
]


def corpus() -> list[str]:
    lines = []
    for country, city, guo, shi in CITIES:
        lines += [
            f"What is the capital of {country}? The capital of {country} is {city}.",
            f"{guo}的首都是哪里？{guo}的首都是{shi}。",
            f"{city} is a city in {country}. {shi}是{guo}的城市。",
        ]
    lines += [f"{a} plus {b} is {a + b}. {a}加{b}等于{a + b}。" for a in range(9) for b in range(9)]
    return lines * 3


def chats() -> list[dict[str, object]]:
    """16 short examples in both JSONL shapes, English and Chinese."""
    rows: list[dict[str, object]] = []
    for country, city, guo, shi in CITIES:
        rows.append({"prompt": f"What is the capital of {country}?", "completion": city})
        user = {"role": "user", "content": f"{guo}的首都是哪里？"}
        rows.append({"messages": [user, {"role": "assistant", "content": f"{shi}。"}]})
    return rows


def write_jsonl(path: Path, rows: Iterable[object]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def build_tiny(
    where: Path,
    vocab_size: int = 400,
    template: str | None = CHATML,
    seed: int = 0,
    layers: int = 4,
) -> Path:
    """Train a byte-level BPE tokenizer and save it with a random tiny Llama into `where`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    if template:
        tokenizer.chat_template = template
    tokenizer.save_pretrained(where)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(where)
    return where
