"""Training data for a student: chat examples from captured cloud answers or from a teacher.

Both sources end the same way: drop empty and out-of-bounds examples, keep the first of each
prompt (normalized: NFKC, case-folded, whitespace collapsed), then split a seeded holdout off.
Every example is OpenAI-style ``{"messages": [..., {"role": "assistant", "content": ANSWER}]}``.

A thinking teacher's reasoning (DeepSeek's ``reasoning_content``) is kept apart from its answer
and left out by default: a small student trained on it learns to think aloud before it answers,
which costs tokens on every request. ``with_reasoning`` opts in, as the DeepSeek-R1 distills were
trained: the assistant turn becomes ``<think>\nREASONING\n</think>\n\nANSWER``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Message = dict[str, Any]

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Filters:
    min_chars: int = 1  # shortest answer kept
    max_chars: int = 16_000  # longest example kept, prompt and answer together


@dataclass(slots=True)
class Summary:
    """What happened to every candidate: kept (train / holdout) or dropped, by reason."""

    read: int = 0
    train: int = 0
    holdout: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.train + self.holdout

    def lines(self) -> list[str]:
        out = [f"read {self.read}, kept {self.kept} (train {self.train}, holdout {self.holdout})"]
        for reason, n in sorted(self.dropped.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"dropped {n}: {reason}")
        return out


@dataclass(frozen=True, slots=True)
class Example:
    messages: list[Message]  # the prompt's messages, then the answer as the last assistant turn
    reasoning: str | None = None  # the teacher's reasoning before that answer, when it thought

    def thought_out(self) -> Example:
        """The answer with the reasoning before it, in R1's ``<think>`` block (if any)."""
        if not self.reasoning or not self.reasoning.strip():
            return self
        answer = f"<think>\n{self.reasoning.strip()}\n</think>\n\n{self.answer}"
        return Example([*self.prompt, {**self.messages[-1], "content": answer}], self.reasoning)

    @property
    def prompt(self) -> list[Message]:
        return self.messages[:-1]

    @property
    def answer(self) -> str:
        return text_of(self.messages[-1].get("content"))

    def row(self) -> dict[str, Any]:
        return {"messages": self.messages}


def text_of(content: Any) -> str:
    """A message's text, whether its content is a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def normalize(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def prompt_key(messages: Sequence[Message]) -> str:
    """Two prompts that differ only in case, width or spacing share a key."""
    return json.dumps(
        [[m.get("role", ""), normalize(text_of(m.get("content")))] for m in messages],
        ensure_ascii=False,
    )


def _size(messages: Sequence[Message]) -> int:
    return sum(len(text_of(m.get("content"))) for m in messages)


def select(examples: Iterable[Example], filters: Filters, summary: Summary) -> list[Example]:
    """Apply the length filters, then keep the first example of each prompt."""
    kept: list[Example] = []
    seen: set[str] = set()
    for example in examples:
        summary.read += 1
        answer = example.answer.strip()
        if not answer:
            summary.dropped["empty answer"] += 1
        elif len(answer) < filters.min_chars:
            summary.dropped[f"answer under {filters.min_chars} chars"] += 1
        elif _size(example.messages) > filters.max_chars:
            summary.dropped[f"over {filters.max_chars} chars"] += 1
        else:
            key = prompt_key(example.prompt)
            if key in seen:
                summary.dropped["duplicate prompt"] += 1
            else:
                seen.add(key)
                kept.append(example)
    return kept


def split(
    examples: Sequence[Example], holdout: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """A seeded holdout of round(n × holdout) examples; both parts keep the input order."""
    if not 0 <= holdout < 1:
        raise ValueError("holdout must be in [0, 1)")
    n = round(len(examples) * holdout)
    chosen = set(random.Random(seed).sample(range(len(examples)), n))
    train = [e for i, e in enumerate(examples) if i not in chosen]
    held = [e for i, e in enumerate(examples) if i in chosen]
    return train, held


def write_jsonl(path: Path, examples: Iterable[Example]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(example.row(), ensure_ascii=False) + "\n")
            n += 1
    return n


def holdout_path(out: Path) -> Path:
    """``data.jsonl`` → ``data.holdout.jsonl``."""
    return out.with_name(f"{out.stem}.holdout{out.suffix or '.jsonl'}")


def finish(
    examples: Iterable[Example],
    out: Path,
    *,
    filters: Filters,
    holdout: float,
    seed: int,
    holdout_out: Path | None = None,
    summary: Summary | None = None,
    with_reasoning: bool = False,
) -> Summary:
    """Filter, dedupe, split and write `out` (and the holdout file when holdout > 0).

    ``with_reasoning``: train on the reasoning too (see the module's docstring); the length
    filters then count it, as the student will be trained on it.
    """
    summary = summary or Summary()
    if with_reasoning:
        examples = (example.thought_out() for example in examples)
    train, held = split(select(examples, filters, summary), holdout, seed)
    summary.train = write_jsonl(out, train)
    if holdout > 0:
        summary.holdout = write_jsonl(holdout_out or holdout_path(out), held)
    return summary


# -- from the capture log -------------------------------------------------------------------------


def from_log(
    url: str,
    *,
    since: float | None = None,
    tenants: Sequence[str] = (),
    routes: Sequence[str] = (),
) -> Iterator[Example]:
    """Captured cloud answers (the `samples` table), as the cloud saw and wrote them."""
    from thrifty.store.samples import read_samples

    for sample in read_samples(url, since=since, tenants=tenants, routes=routes):
        if sample.pii and not sample.masked:
            continue  # never: read_samples already leaves these out
        answer = {"role": "assistant", "content": sample.answer}
        yield Example([*sample.messages, answer], sample.reasoning)


# -- from a teacher -------------------------------------------------------------------------------


class PromptFileError(ValueError):
    """A prompts file that cannot be read at all."""


def read_prompts(path: Path, system: str | None, summary: Summary) -> list[list[Message]]:
    """Prompts as chat messages. Each line: ``{"prompt": TEXT}``, ``{"messages": [...]}`` (a
    trailing assistant turn is dropped: the teacher answers anew) or a JSON string."""
    prompts = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PromptFileError(f"cannot read {path}: {exc}") from None
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            summary.read += 1
            summary.dropped["unreadable line"] += 1
            continue
        messages: list[Message] | None = None
        if isinstance(row, str):
            messages = [{"role": "user", "content": row}]
        elif isinstance(row, dict) and isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        elif isinstance(row, dict) and isinstance(row.get("messages"), list):
            messages = [m for m in row["messages"] if isinstance(m, dict)]
            while messages and messages[-1].get("role") == "assistant":
                messages.pop()
        if not messages or messages[-1].get("role") != "user":
            summary.read += 1
            summary.dropped["no user prompt"] += 1
            continue
        if system and messages[0].get("role") != "system":
            messages = [{"role": "system", "content": system}, *messages]
        prompts.append(messages)
    return prompts


@dataclass(frozen=True, slots=True)
class Teacher:
    model: str
    base_url: str
    api_key: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    concurrency: int = 4
    use_cache: bool = True  # the gateway's cache holds the teacher's own earlier answers


def ask_teacher(
    prompts: Sequence[list[Message]],
    teacher: Teacher,
    summary: Summary,
    on_done: Callable[[], None] = lambda: None,
) -> list[Example]:
    """Ask the teacher every prompt (at most `concurrency` at once); answers in prompt order.

    Failed calls, and answers the gateway gave from the local model instead of the teacher (a
    prompt with personal data kept local, say), are dropped and counted.
    """
    return asyncio.run(_ask_all(prompts, teacher, summary, on_done))


async def _ask_all(
    prompts: Sequence[list[Message]],
    teacher: Teacher,
    summary: Summary,
    on_done: Callable[[], None],
) -> list[Example]:
    import aiohttp

    from thrifty.evals.endpoint import Endpoint, EndpointError

    endpoint = Endpoint(teacher.base_url, teacher.api_key, use_cache=teacher.use_cache)
    gate = asyncio.Semaphore(teacher.concurrency)
    answers: list[Example | None] = [None] * len(prompts)
    errors: Counter[str] = Counter()

    async def one(i: int, messages: list[Message], session: aiohttp.ClientSession) -> None:
        async with gate:
            try:
                reply = await endpoint.chat(
                    session, teacher.model, messages, teacher.max_tokens, teacher.temperature
                )
            except EndpointError as exc:
                errors[f"teacher error ({str(exc)[:60]})"] += 1
            else:
                if reply.route == "local" and teacher.model != "local":
                    errors["answered by the local model, not the teacher"] += 1
                else:
                    answer = {"role": "assistant", "content": reply.text}
                    answers[i] = Example([*messages, answer], reply.reasoning)
            finally:
                on_done()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(i, m, session) for i, m in enumerate(prompts)))
    summary.dropped.update(errors)
    summary.read += sum(errors.values())
    return [a for a in answers if a is not None]


def dedupe_prompts(
    prompts: Iterable[list[Message]], filters: Filters, summary: Summary
) -> list[list[Message]]:
    """Before paying a teacher: drop repeated and over-long prompts (counted as read)."""
    kept, seen = [], set()
    for messages in prompts:
        key = prompt_key(messages)
        if key in seen:
            summary.read += 1
            summary.dropped["duplicate prompt"] += 1
        elif _size(messages) > filters.max_chars:
            summary.read += 1
            summary.dropped[f"over {filters.max_chars} chars"] += 1
        else:
            seen.add(key)
            kept.append(messages)
    return kept
