"""Privacy: find personal data in every request, and keep it from clouds it must not reach.

Two stages around the routing stages:

- `PIIScan` runs first, on every message (system and earlier turns included), and records the
  kinds found in `ctx.pii`. It is a handful of compiled regexes and validators: microseconds.
- `PrivacyGuard` runs after the route is chosen, whoever chose it (router rule or explicit
  model name), and enforces `privacy.on_pii` on the final target list, fallbacks included:
  `local` drops every cloud target (the request is answered locally or not at all), `mask`
  replaces the values with typed placeholders before they leave and restores them in the
  answer, `reject` refuses the request, `allow` lets it through.
"""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.backends import Registry, Reply
from thrifty.config import PrivacySettings
from thrifty.context import RequestContext
from thrifty.errors import RouteRejected
from thrifty.gateway.pii import Masker, PIIDetector, StreamUnmasker, unmask
from thrifty.gateway.stage import Stage


class PIIScan(Stage):
    def __init__(self, detector: PIIDetector) -> None:
        self.detector = detector

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        body = ctx.body
        messages = body.get("messages")
        if messages is not None:
            found = self.detector.scan_messages(messages)
        else:
            prompt = body.get("prompt")
            texts = (
                [prompt]
                if isinstance(prompt, str)
                else [p for p in prompt or [] if isinstance(p, str)]
            )
            found = set().union(*(self.detector.kinds_in(t) for t in texts)) if texts else set()
        if found:
            ctx.pii = frozenset(found)
        return None


class PrivacyGuard(Stage):
    def __init__(
        self, settings: PrivacySettings, registry: Registry, detector: PIIDetector
    ) -> None:
        self.on_pii = settings.on_pii
        self.registry = registry
        self.detector = detector
        self.masker = Masker(detector)

    async def on_request(self, ctx: RequestContext) -> Reply | None:
        if not ctx.pii or not any(t.upstream is not None for t in ctx.targets):
            return None
        kinds = "+".join(sorted(ctx.pii))
        action = "mask" if ctx.mask_pii else self.on_pii
        original = ctx.body
        if action == "allow":
            return None
        if action == "mask":
            if self._mask(ctx):
                ctx.notes.append(f"pii={kinds} masked")
                return None
            action = "local"  # something the masker could not replace: fail closed
            ctx.body, ctx.pii_mapping = original, None
        if action == "reject":
            raise RouteRejected(
                f"the request carries personal data ({kinds}) and its route leaves this site"
            )
        local = [t for t in ctx.targets if t.upstream is None]
        if not local:
            target = self.registry.resolve("local")
            if target is None:
                raise RouteRejected(
                    f"the request carries personal data ({kinds}); it may only be answered "
                    "locally, and no local model is configured"
                )
            local = [target]
        ctx.targets = local
        ctx.notes.append(f"pii={kinds} -> local only")
        return None

    # the answer halves: masked values go back where they were

    def on_reply(self, ctx: RequestContext, payload: dict[str, Any]) -> dict[str, Any]:
        if not ctx.pii_mapping:
            return payload
        restored = orjson.loads(orjson.dumps(payload))  # ctx.reply keeps the masked answer
        unmask_payload(restored, ctx.pii_mapping)
        return restored

    def on_stream(self, ctx: RequestContext) -> StreamRestorer | None:
        return StreamRestorer(ctx.pii_mapping) if ctx.pii_mapping else None

    def _mask(self, ctx: RequestContext) -> bool:
        """Mask in place; False when the masked request still carries personal data."""
        body: dict[str, Any] = dict(ctx.body)
        if "messages" in body:
            body["messages"], mapping = self.masker.mask_messages(body["messages"])
            masked_messages = body["messages"]
        else:
            prompt = body.get("prompt")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
            as_messages = [{"role": "user", "content": p} for p in prompts if isinstance(p, str)]
            masked, mapping = self.masker.mask_messages(as_messages)
            masked_messages = masked
            texts = [m["content"] for m in masked]
            body["prompt"] = texts[0] if isinstance(prompt, str) else texts
        ctx.body = body
        ctx.pii_mapping = mapping
        # e.g. a value inside JSON-escaped text that detection decodes but masking cannot reach
        return not self.detector.scan_messages(masked_messages)


# Where an answer carries text the cloud wrote: a thinking model's reasoning as well as its content.
_RESTORED = ("reasoning_content", "content")  # reasoning first: it ends where content starts


def unmask_payload(payload: dict[str, Any], mapping: dict[str, str]) -> None:
    """Restore masked values in a whole answer, in place: content and reasoning alike."""
    for choice in payload.get("choices") or []:
        message = choice.get("message")
        if isinstance(message, dict):
            for key in _RESTORED:
                if isinstance(message.get(key), str):
                    message[key] = unmask(message[key], mapping)
        if isinstance(choice.get("text"), str):
            choice["text"] = unmask(choice["text"], mapping)


class StreamRestorer:
    """Restore masked values in streamed chunks; a placeholder may be split across chunks.

    Each choice's content and reasoning are restored apart (one unmasker each). Reasoning comes
    first: what its unmasker still holds when the content starts goes out with that chunk.
    """

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self.unmaskers: dict[tuple[int, str], StreamUnmasker] = {}

    def chunk(self, payload: dict[str, Any]) -> dict[str, Any]:
        for choice in payload.get("choices") or []:
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._fields(index, delta, _RESTORED)
            else:
                self._fields(index, choice, ("text",))
            if choice.get("finish_reason") is not None:
                holder = delta if isinstance(delta, dict) else choice
                keys = _RESTORED if isinstance(delta, dict) else ("text",)
                for key in keys:  # content's key is set even when empty, as before
                    unmasker = self.unmaskers.pop((index, key), None)
                    rest = unmasker.flush() if unmasker is not None else ""
                    if rest or key in ("content", "text"):
                        holder[key] = (holder.get(key) or "") + rest
        return payload

    def _fields(self, index: int, holder: dict[str, Any], keys: tuple[str, ...]) -> None:
        for key in keys:
            text = holder.get(key)
            if not isinstance(text, str):
                continue
            if key == "content" and text:
                self._end_reasoning(index, holder)
            unmasker = self.unmaskers.get((index, key))
            if unmasker is None:
                unmasker = self.unmaskers[(index, key)] = StreamUnmasker(self.mapping)
            holder[key] = unmasker.feed(text)

    def _end_reasoning(self, index: int, holder: dict[str, Any]) -> None:
        unmasker = self.unmaskers.pop((index, "reasoning_content"), None)
        rest = unmasker.flush() if unmasker is not None else ""
        if rest:
            holder["reasoning_content"] = (holder.get("reasoning_content") or "") + rest

    def close(self) -> list[dict[str, Any]]:
        return []
