"""Teachers for `--method kd`: logits when the teacher is local and shares the student's
tokenizer, otherwise its answers (sequence-level distillation, i.e. SFT on what it says).

Logit distillation compares two distributions over the same vocabulary position by position, so
it needs the same token ids on both sides. A teacher behind an API gives no logits, and a local
one with another tokenizer gives logits over other tokens: both fall back to asking the teacher
for each answer and training the student on those.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thrifty.backends.models import QA_STOP
from thrifty.train.data import Message, chat_template, render

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Answer = Callable[[list[Message]], str]


class TeacherError(Exception):
    """The teacher could not be loaded or asked."""


def same_vocab(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Whether token ids mean the same text on both sides (what logit distillation needs)."""
    return bool(a.get_vocab() == b.get_vocab())


def relabel(chats: list[list[Message]], answer: Answer) -> list[list[Message]]:
    """The chats with every assistant turn replaced by the teacher's answer to the turns before."""
    relabelled = []
    for chat in chats:
        new: list[Message] = []
        for message in chat:
            if message["role"] == "assistant":
                message = {"role": "assistant", "content": answer(new)}
            new.append(message)
        relabelled.append(new)
    return relabelled


def local_answerer(model: Any, tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> Answer:
    """Greedy answers from a local teacher (a transformers model), in its own chat layout."""
    import torch

    qa_layout = chat_template(tokenizer) is None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def answer(messages: list[Message]) -> str:
        prompt = render(tokenizer, messages, generation_prompt=True)
        ids = tokenizer.encode(prompt, add_special_tokens=qa_layout, return_tensors="pt")
        ids = ids.to(model.device)
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=pad_id,
            )
        text = str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
        return _cut_at_stop(text) if qa_layout else text.strip()

    return answer


def _cut_at_stop(text: str) -> str:
    """The Q/A layout has no end token: an answer ends where the next question would begin."""
    for stop in QA_STOP:
        text = text.split(stop, 1)[0]
    return text.strip()


def api_answerer(base_url: str, model: str, api_key: str | None, max_tokens: int) -> Answer:
    """Greedy answers from an OpenAI-compatible endpoint (thrifty, DeepSeek, vLLM, ...)."""

    def answer(messages: list[Message]) -> str:
        body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
        reply = _post_json(base_url.rstrip("/") + "/chat/completions", body, api_key)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise TeacherError(f"{base_url}: not a chat completion: {str(reply)[:200]}") from None
        return str(content or "").strip()

    return answer


def _post_json(url: str, body: dict[str, Any], api_key: str | None) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    if api_key:
        request.add_header("authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise TeacherError(f"teacher {url}: HTTP {exc.code}: {exc.read()[:200]!r}") from None
    except urllib.error.URLError as exc:
        raise TeacherError(f"cannot reach the teacher at {url}: {exc.reason}") from None
