"""Moderation: word lists and regexes on requests and answers, and an optional model self-check.

Each list (`wordmatch.py`: the files, their format, how they are matched) has one action: `block`
(400 content_policy_violation; mid-stream, an error event ends the stream), `mask` (the match
becomes `***`) or `flag` (let through, recorded, and a sample goes to the review queue). Config
may override a list's action and direction by its name.

Streams: a term may arrive split across two chunks, so each choice's tail that could still
grow into a match (and only that: `holdback.py`) is held back and scanned again with the next
chunk; the held tail is released when the choice finishes.
"""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from thrifty.backends import Reply
from thrifty.config import ModerationSettings, SelfCheckSettings
from thrifty.context import RequestContext
from thrifty.errors import ContentPolicyViolation
from thrifty.gateway.memo import TextMemo
from thrifty.gateway.pii import PIIDetector, iter_message_texts, redact, rewrite_message_texts
from thrifty.gateway.stage import Stage
from thrifty.gateway.wordmatch import (
    SEVERITY,
    Action,
    Direction,
    Hit,
    Matcher,
    apply_masks,
    load_word_lists,
)
from thrifty.store.review import ReviewItem

if TYPE_CHECKING:
    from thrifty.backends import Registry
    from thrifty.config import Settings
    from thrifty.gateway.call import Caller

logger = logging.getLogger(__name__)

_MAX_OPEN = 4096  # findings kept for requests not finished yet (on_finish pops them)


# --- what a request's moderation found ---------------------------------------------------------


@dataclass(slots=True)
class Finding:
    """What one direction of one request matched (or what the self-check said)."""

    direction: Direction
    action: Action
    lists: set[str] = field(default_factory=set)
    excerpts: list[str] = field(default_factory=list)

    def add(self, hits: list[Hit], text: str, width: int = 80) -> None:
        for hit in hits:
            self.lists.add(hit.list.name)
            if SEVERITY[hit.list.action] > SEVERITY[self.action]:
                self.action = hit.list.action
            if len(self.excerpts) < 5:
                self.excerpts.append(text[max(0, hit.start - width) : hit.end + width])


def _strongest(hits: list[Hit]) -> Action:
    return max((h.list.action for h in hits), key=SEVERITY.__getitem__)


class SelfCheck(Protocol):
    """A judge run on every request after the word lists: None when fine, else a reason."""

    async def __call__(self, text: str, ctx: RequestContext) -> str | None: ...


class Moderation(Stage):
    """Word lists on the request (on the way in) and on the answer (whole or streamed); findings
    sampled for review when the request is finished."""

    def __init__(
        self,
        settings: ModerationSettings,
        review: Callable[[ReviewItem], None] | None = None,
        rng: random.Random | None = None,
        detector: PIIDetector | None = None,
    ) -> None:
        lists = load_word_lists(settings) if settings.enabled else []
        self.input = Matcher(
            (wl for wl in lists if "input" in wl.directions), settings.max_regex_chars
        )
        self.output = Matcher(
            (wl for wl in lists if "output" in wl.directions), settings.max_regex_chars
        )
        # a chat resends its history every turn: a long text seen lately is not scanned again
        self._scan_input = TextMemo(lambda text: tuple(self.input.scan(text)))
        self.mask = settings.mask_with
        self.review = review
        self.sample = settings.review_sample
        self.review_actions = frozenset(settings.review_actions)
        self.review_chars = settings.review_chars
        # review items are stored: personal data in them is redacted (every kind, whatever
        # privacy.detect says: what is kept on disk is not a routing decision)
        self.detector = detector or PIIDetector()
        self.rng = rng or random.Random()
        self._found: dict[str, list[Finding]] = {}

    # the request half

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if self.input.empty:
            return None
        found: list[tuple[str, list[Hit]]] = []
        for text in _request_texts(ctx.body):
            long = len(text) >= self._scan_input.min_chars  # a short one: scanned, not hashed
            hits = self._scan_input(text) if long else self.input.scan(text)
            if hits:
                found.append((text, list(hits)))
        if not found:
            return None
        finding = self._record(ctx, "input", found)
        if finding.action == "block":
            raise ContentPolicyViolation(
                "The request was refused by the content policy "
                f"(list: {', '.join(sorted(finding.lists))}).",
                param="messages" if "messages" in ctx.body else "prompt",
            )
        if any(h.list.action == "mask" for _, hits in found for h in hits):
            masked = {text: apply_masks(text, hits, self.mask) for text, hits in found}
            ctx.body = _rewrite_request(ctx.body, lambda t: masked.get(t, t))
        return None

    # answers

    def on_reply(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        """Mask, flag or refuse a whole answer (a masked answer is a copy)."""
        if self.output.empty:
            return payload
        found = [(t, hits) for _, _, t in _answer_texts(payload) if (hits := self.output.scan(t))]
        if not found:
            return payload
        finding = self._record(ctx, "output", found)
        if finding.action == "block":
            raise _withheld(finding)
        payload = orjson.loads(orjson.dumps(payload))
        for holder, key, text in _answer_texts(payload):
            hits = self.output.scan(text)
            if hits:
                holder[key] = apply_masks(text, hits, self.mask)
        return payload

    def on_stream(self, ctx: RequestContext) -> StreamGuard | None:
        return None if self.output.empty else StreamGuard(self, ctx)

    def add_finding(self, ctx: RequestContext, finding: Finding) -> None:
        if ctx.id not in self._found and len(self._found) >= _MAX_OPEN:
            del self._found[next(iter(self._found))]  # a request that never finished
        self._found.setdefault(ctx.id, []).append(finding)

    def _record(
        self, ctx: RequestContext, direction: Direction, found: list[tuple[str, list[Hit]]]
    ) -> Finding:
        finding = Finding(direction, "flag")
        for text, hits in found:
            finding.add(hits, text)
        self.add_finding(ctx, finding)
        return finding

    # after the answer: sample findings for review

    def on_finish(self, ctx: RequestContext) -> None:
        findings = self._found.pop(ctx.id, None)
        if not findings or self.review is None:
            return
        sampled = [f for f in findings if f.action in self.review_actions]
        if not sampled or self.rng.random() >= self.sample:
            return
        for finding in sampled:
            excerpt = redact(self.detector, " … ".join(finding.excerpts))[: self.review_chars]
            self.review(
                ReviewItem(
                    request_id=ctx.id,
                    tenant=ctx.tenant,
                    key_id=ctx.key_id,
                    model=ctx.model,
                    direction=finding.direction,
                    action=finding.action,
                    lists=",".join(sorted(finding.lists)),
                    excerpt=excerpt,
                    ts=ctx.received_at,
                )
            )


def _withheld(finding: Finding) -> ContentPolicyViolation:
    lists = ", ".join(sorted(finding.lists))
    return ContentPolicyViolation(f"The answer was withheld by the content policy (list: {lists}).")


class StreamGuard:
    """Moderates a streamed answer chunk by chunk, holding back each choice's last characters."""

    def __init__(self, moderation: Moderation, ctx: RequestContext) -> None:
        self.moderation = moderation
        self.matcher = moderation.output
        self.ctx = ctx
        self.held: dict[int, str] = {}  # per choice: text not yet sent
        self.before: dict[int, str] = {}  # per choice: the last character sent
        self.head: dict[str, Any] = {}
        self.finding: Finding | None = None

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """The chunk as it may be sent; raises ContentPolicyViolation on a blocked term."""
        if not self.head:
            self.head = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            delta = choice.get("delta")
            key, holder = ("content", delta) if isinstance(delta, dict) else ("text", choice)
            text = holder.get(key)
            final = choice.get("finish_reason") is not None
            if isinstance(text, str) or final:
                out = self._feed(index, text if isinstance(text, str) else "", final)
                if out or key in holder:
                    holder[key] = out
        return chunk

    def close(self) -> list[dict[str, Any]]:
        """A last chunk with text still held (when a choice never said it had finished)."""
        choices = []
        for index in sorted(self.held):
            text = self._feed(index, "", final=True)
            if text:
                part = (
                    {"text": text}
                    if self.ctx.endpoint == "completions"
                    else {"delta": {"content": text}}
                )
                choices.append({"index": index, **part, "finish_reason": None})
        return [{**self.head, "choices": choices}] if choices else []

    def _feed(self, index: int, text: str, final: bool) -> str:
        held = self.held.pop(index, "")
        buffer = held + text if held else text
        before = self.before.get(index, " ")
        hits = self.matcher.scan(buffer, before)
        cut = len(buffer) if final else len(buffer) - self.matcher.holdback.pending(buffer, before)
        if hits:
            return self._feed_hits(index, buffer, cut, hits, final)
        if cut < len(buffer):  # the common case: no term, only a possible start of one waits
            self.held[index] = buffer[cut:]
            buffer = buffer[:cut]
        if buffer:
            self.before[index] = buffer[-1]
        return buffer

    def _feed_hits(self, index: int, buffer: str, cut: int, hits: list[Hit], final: bool) -> str:
        # a blocked term is refused as soon as it is whole and the character after it is known
        settled = [
            h for h in hits if h.start < cut or (h.list.action == "block" and h.end < len(buffer))
        ]
        if settled:
            self._note(settled, buffer)
        send_to = max([cut, *(h.end for h in settled)])
        out = apply_masks(buffer[:send_to], settled, self.moderation.mask)
        if send_to:
            self.before[index] = buffer[send_to - 1]
        if not final and send_to < len(buffer):
            self.held[index] = buffer[send_to:]
        return out

    def _note(self, hits: list[Hit], text: str) -> None:
        if self.finding is None:
            self.finding = Finding("output", "flag")
            self.moderation.add_finding(self.ctx, self.finding)
        self.finding.add(hits, text)
        if _strongest(hits) == "block":
            raise _withheld(self.finding)


# --- where text lives in requests and answers --------------------------------------------------


def _request_texts(body: Mapping[str, Any]) -> Iterator[str]:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                yield from iter_message_texts(message)
        return
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        yield prompt
    elif isinstance(prompt, list):
        yield from (p for p in prompt if isinstance(p, str))


def _rewrite_request(body: dict[str, Any], rewrite: Callable[[str], str]) -> dict[str, Any]:
    out = dict(body)
    if isinstance(body.get("messages"), list):
        out["messages"] = [
            rewrite_message_texts(m, rewrite) if isinstance(m, Mapping) else m
            for m in body["messages"]
        ]
        return out
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        out["prompt"] = rewrite(prompt)
    elif isinstance(prompt, list):
        out["prompt"] = [rewrite(p) if isinstance(p, str) else p for p in prompt]
    return out


def _answer_texts(payload: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(holder, key, text) for each text of a whole answer."""
    for choice in payload.get("choices") or []:
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            yield message, "content", message["content"]
        if isinstance(choice.get("text"), str):
            yield choice, "text", choice["text"]


# --- the optional model self-check -------------------------------------------------------------


class SelfCheckStage(Stage):
    """Asks a judge about the request's text; UNSAFE blocks or flags, as configured."""

    def __init__(
        self, check: SelfCheck, settings: SelfCheckSettings, moderation: Moderation
    ) -> None:
        self.check = check
        self.action: Action = settings.action
        self.max_chars = settings.max_chars
        self.moderation = moderation

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        text = "\n".join(_request_texts(ctx.body))[-self.max_chars :]
        try:
            reason = await self.check(text, ctx)
        except Exception as exc:  # the judge is an opinion: its failure must not fail requests
            logger.warning("self-check failed for %s: %s", ctx.id, exc)
            return None
        if reason is None:
            return None
        finding = Finding("input", self.action, {"self_check"}, [text[-200:]])
        self.moderation.add_finding(ctx, finding)
        if self.action == "block":
            raise ContentPolicyViolation(
                f"The request was refused by the content policy ({reason})."
            )
        return None


class ModelSelfCheck:
    """The built-in judge: asks a model (through the gateway's caller) for SAFE or UNSAFE."""

    def __init__(self, settings: SelfCheckSettings, caller: Caller, registry: Registry) -> None:
        self.caller = caller
        self.registry = registry
        self.model = settings.model
        self.prompt = settings.prompt

    async def __call__(self, text: str, ctx: RequestContext) -> str | None:
        target = self.registry.resolve(self.model)
        if target is None:
            raise LookupError(f"self-check model {self.model!r} is not served here")
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.prompt},
                {"role": "user", "content": text},
            ],
            "max_tokens": 4,
            "temperature": 0,
        }
        check = RequestContext("chat", body, self.model, False, tenant=ctx.tenant)
        check.targets = [target]
        reply = await self.caller.complete(check)
        choices = reply.payload.get("choices") or [{}]
        answer = str((choices[0].get("message") or {}).get("content") or "")
        return "self-check: UNSAFE" if "UNSAFE" in answer.upper() else None


def build_self_check(
    settings: Settings, caller: Caller, registry: Registry, moderation: Moderation
) -> SelfCheckStage | None:
    """The self-check stage when `moderation.self_check.enabled`, else None."""
    config = settings.moderation.self_check
    if not config.enabled:
        return None
    check: SelfCheck
    if config.factory:
        module, _, name = config.factory.partition(":")
        check = getattr(importlib.import_module(module), name)(settings, caller, registry)
    else:
        check = ModelSelfCheck(config, caller, registry)
    return SelfCheckStage(check, config, moderation)
