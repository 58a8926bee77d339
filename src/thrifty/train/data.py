"""Training data: JSONL chats → token ids with the prompt loss-masked.

Each line is `{"messages": [{"role", "content"}, ...]}` (OpenAI's shape; every assistant turn is
trained on) or `{"prompt": ..., "completion": ...}` (one user turn, one assistant turn).

A chat is rendered with the tokenizer's chat template, or, for base models without one, with the
plain "Question: …\\nAnswer: …" layout that `thrifty serve` uses for them (`QA_TEMPLATE`). The text
is cut at each assistant turn's boundaries and the pieces are tokenized one by one: the prompt is
then tokenized exactly as at inference time (the server renders the same prefix and the model
continues it), and the answer tokens are the ones the model must produce. Prompt tokens get the
label -100, which every loss here ignores.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.backends.models import QA_TEMPLATE

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE = -100  # the label of a token that is not trained on (torch's cross_entropy ignore_index)
ROLES = frozenset({"system", "developer", "user", "assistant"})
Message = dict[str, str]


class DataError(ValueError):
    """A training file or line that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """One example: token ids and their labels (IGNORE on prompt tokens), equally long."""

    input_ids: list[int]
    labels: list[int]


def read_chats(path: Path) -> list[list[Message]]:
    """Every example of a JSONL file as a message list; DataError names the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    chats = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                chats.append(parse_line(json.loads(line)))
            except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
                raise DataError(f"{path} line {number}: {exc}") from None
    if not chats:
        raise DataError(f"{path}: no examples")
    return chats


def parse_line(row: Any) -> list[Message]:
    """One JSONL row (either shape) as a validated message list."""
    if not isinstance(row, dict):
        raise DataError("expected a JSON object")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError('"messages" must be a non-empty list')
        chat = [_message(m) for m in messages]
    elif "prompt" in row and "completion" in row:
        chat = [
            _message({"role": "user", "content": row["prompt"]}),
            _message({"role": "assistant", "content": row["completion"]}),
        ]
    else:
        raise DataError('expected {"messages": [...]} or {"prompt": ..., "completion": ...}')
    if not any(m["role"] == "assistant" for m in chat):
        raise DataError("no assistant turn to train on")
    return chat


def _message(raw: Any) -> Message:
    if not isinstance(raw, dict) or raw.get("role") not in ROLES:
        raise DataError(f"a message needs a role among {sorted(ROLES)}: {str(raw)[:80]}")
    content = raw.get("content")
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise DataError(f"a {raw['role']} message needs string content")
    return {"role": raw["role"], "content": content}


def chat_template(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The tokenizer's own chat template; None means the plain Q/A layout (`QA_TEMPLATE`)."""
    template = getattr(tokenizer, "chat_template", None)
    return template if isinstance(template, str) and template else None


def render(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], generation_prompt: bool = False
) -> str:
    """The chat as text, with the tokenizer's template or else the Q/A layout."""
    text = tokenizer.apply_chat_template(
        messages,
        chat_template=chat_template(tokenizer) or QA_TEMPLATE,
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )
    assert isinstance(text, str)
    return text


def encode(tokenizer: PreTrainedTokenizerBase, messages: list[Message], max_len: int) -> Encoded:
    """Token ids of the rendered chat, labels only on assistant turns, cut to max_len tokens."""
    full = render(tokenizer, messages)
    # A chat template writes its own BOS; the Q/A layout is plain text and gets the tokenizer's.
    special = chat_template(tokenizer) is None
    ids: list[int] = []
    labels: list[int] = []
    cursor = 0
    for start, end in _answer_spans(tokenizer, messages, full):
        for piece, trained in ((full[cursor:start], False), (full[start:end], True)):
            piece_ids = tokenizer.encode(piece, add_special_tokens=special and not ids)
            ids += piece_ids
            labels += piece_ids if trained else [IGNORE] * len(piece_ids)
        cursor = end
    tail = tokenizer.encode(full[cursor:], add_special_tokens=False)
    ids += tail
    labels += [IGNORE] * len(tail)
    return Encoded(ids[:max_len], labels[:max_len])


def _answer_spans(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], full: str
) -> list[tuple[int, int]]:
    """Character spans of the assistant turns in `full`: between the text that prompts each turn
    (the history plus the generation prompt) and the text through that turn."""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], generation_prompt=True)
        through = render(tokenizer, messages[: index + 1])
        if not (through.startswith(before) and full.startswith(through)):
            raise DataError("the chat template renders a chat's history differently by turn")
        spans.append((len(before), len(through)))
    return spans


def encode_all(
    tokenizer: PreTrainedTokenizerBase, chats: list[list[Message]], max_len: int
) -> tuple[list[Encoded], int]:
    """Encoded examples, and how many were dropped because max_len cut off every answer token."""
    kept = []
    for chat in chats:
        example = encode(tokenizer, chat, max_len)
        if any(label != IGNORE for label in example.labels):
            kept.append(example)
    if not kept:
        raise DataError(f"no example has an answer token within --max-len {max_len}")
    return kept, len(chats) - len(kept)


def collate(examples: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch: input_ids, attention_mask and labels, each (batch, longest)."""
    import torch

    longest = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), longest), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def epoch_order(count: int, epoch: int, seed: int) -> list[int]:
    """The example order of one epoch: a pure function of (seed, epoch), so a resumed run sees
    the same batches as an uninterrupted one."""
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order
