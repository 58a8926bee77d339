"""The whole request, as an upstream would receive it: scan it, mask it, restore the answer.

Every string and number at any depth of the body is read (`user`, `metadata`, tool
descriptions and JSON-schema defaults, `response_format`, names, refusal parts, tool-call
arguments, …), and dictionary keys too: anything that leaves can carry personal data, so no list
of known fields decides what is scanned. What is *masked* is narrower: free text only. Values the
upstream needs verbatim (`model`, `tool_call_id`, a function's `name`, `enum` values, keys,
numbers) are scanned but never rewritten, so personal data there leaves the masked request still
carrying it, and the guard keeps it local.

Content that cannot be read as text (image, audio and file parts, base64 blobs, data: URLs, a
completion prompt or embedding input given as token ids) is reported as `unscannable`. A value
split over two strings (an ID half in one message, half in the next) is found by scanning each
boundary; masking then replaces each piece.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from thrifty.gateway._pii_rules import DEADLINE, ScanTimeout
from thrifty.gateway.pii import PIIDetector, Placeholders, StreamUnmasker, unmask

UNSCANNABLE = "unscannable"  # a pseudo-kind: content no text scan can clear
SCAN_FAILED = "scan_failed"  # a pseudo-kind: the scan raised or ran past its deadline

# Identifiers an upstream must receive exactly as sent.
_VERBATIM_KEYS = frozenset(
    {
        "model",
        "tool_call_id",
        "id",
        "role",
        "type",
        "object",
        "format",
        "pattern",
        "$ref",
        "$schema",
        "$id",
        "detail",
        "reasoning_effort",
        "service_tier",
        "voice",
        "modalities",
        "required",
        "url",  # a link to an image or file: rewriting it breaks it
    }
)
# Subtrees whose every string is an identifier: enum values, the tool the client forces.
_VERBATIM_TREES = frozenset({"enum", "const", "tool_choice", "function_call_choice"})
_UNSCANNABLE_PARTS = frozenset(
    {"image_url", "input_image", "image", "input_audio", "audio", "file", "input_file", "video_url"}
)
# A blob: a data: URL, or a long unbroken run of base64 characters (line breaks allowed: MIME
# writes 76 a line). Written to start with one character class, so the engine skips fast.
_DATA_URL = re.compile(r"data:[\w/+.-]{0,80};base64,")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_=-](?<![A-Za-z0-9+/_=-].)(?:[A-Za-z0-9+/_=-]|\r?\n){255}")


def _is_blob(value: str) -> bool:
    if "data:" in value and _DATA_URL.search(value):
        return True
    # prose has spaces: no piece between two of them is 256 characters long
    if len(value) < 256 or max(map(len, value.split(" "))) < 256:
        return False
    return _BASE64_RUN.search(value) is not None


# What the OpenAI and Anthropic protocols name their fields, and the values of their role and
# part-type enums: words of the protocol, not of the user. Skipping them (the rest of a body's
# keys and identifiers are still scanned) keeps a typical chat's scan to its free text.
_PROTOCOL_WORDS = frozenset(
    {
        *_VERBATIM_KEYS,
        *_VERBATIM_TREES,
        *_UNSCANNABLE_PARTS,
        "messages",
        "content",
        "name",
        "text",
        "prompt",
        "suffix",
        "system",
        "user",
        "assistant",
        "tool",
        "tools",
        "function",
        "functions",
        "developer",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "n",
        "stream",
        "stream_options",
        "include_usage",
        "stop",
        "seed",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "parallel_tool_calls",
        "tool_calls",
        "arguments",
        "description",
        "parameters",
        "properties",
        "items",
        "default",
        "strict",
        "schema",
        "json_schema",
        "json_object",
        "response_format",
        "metadata",
        "refusal",
        "thinking",
        "reasoning_content",
        "enabled",
        "disabled",
        "budget_tokens",
        "echo",
        "best_of",
        "encoding_format",
        "dimensions",
        "input",
        "thrifty",
        "string",
        "number",
        "integer",
        "boolean",
        "object",
        "array",
        "null",
        "auto",
        "none",
        "stop_sequences",
        "tool_use",
        "tool_result",
        "tool_use_id",
        "source",
        "media_type",
        "data",
        "minimum",
        "maximum",
        "additionalProperties",
        "anyOf",
        "oneOf",
        "allOf",
        "title",
        "examples",
        "store",
    }
)
# Fields of /v1/completions and /v1/embeddings that may hold token ids instead of text: ids of
# the upstream's tokenizer, which this gateway does not have, so no scan can read them.
_TOKEN_FIELDS = frozenset({"prompt", "input"})
_SHORTEST_NUMBER = 7  # no kind is a number of fewer digits (a phone has 7 at least)

_JSON_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_BOUNDARY = 40  # characters each side of a boundary between two strings scanned together

Path = tuple[str | int, ...]


@dataclass(slots=True)
class Leaf:
    """One scannable value: where it is, its text, and whether it may be rewritten."""

    path: Path
    text: str
    verbatim: bool


@dataclass(slots=True)
class RequestScan:
    kinds: set[str] = field(default_factory=set)
    unscannable: bool = False


def iter_leaves(body: Any) -> Iterator[Leaf]:
    """Every string and number in `body` (keys too), depth first, in document order.

    An explicit stack: a body nested thousands deep must not exhaust Python's recursion.
    """
    stack: list[tuple[Path, Any, bool]] = [((), body, False)]
    while stack:
        path, value, verbatim = stack.pop()
        if isinstance(value, str):
            verbatim = verbatim or _verbatim_key(path)
            if not (verbatim and value in _PROTOCOL_WORDS):
                yield Leaf(path, value, verbatim)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int | float):
            text = _number_text(value)
            if len(text) >= _SHORTEST_NUMBER:
                yield Leaf(path, text, True)
        elif isinstance(value, Mapping):
            children = []
            for key, child in value.items():
                key_text = str(key)
                if key_text not in _PROTOCOL_WORDS:
                    yield Leaf((*path, key_text, "<key>"), key_text, True)
                children.append(((*path, key_text), child, verbatim or key in _VERBATIM_TREES))
            stack.extend(reversed(children))
        elif isinstance(value, list | tuple):
            stack.extend(
                ((*path, index), child, verbatim)
                for index, child in reversed(list(enumerate(value)))
            )


def _verbatim_key(path: Path) -> bool:
    if not path or not isinstance(path[-1], str):
        return False
    key = path[-1]
    if key == "name":
        # a message's author name is free text (masked); a function's or schema's is an identifier
        return not (len(path) == 3 and path[0] == "messages")
    return key in _VERBATIM_KEYS


def is_unscannable(body: Any) -> bool:
    """Whether the body holds content a text scan cannot clear: media parts, blobs, or a
    prompt or input given as token ids."""
    stack = [body]
    if isinstance(body, Mapping):
        for key in _TOKEN_FIELDS:
            value = body.get(key)
            if isinstance(value, list) and (
                _is_tokens(value) or any(isinstance(v, list) and _is_tokens(v) for v in value)
            ):
                return True
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            kind = value.get("type")  # a JSON schema's type may be a list: unhashable
            if isinstance(kind, str) and kind in _UNSCANNABLE_PARTS:
                return True
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, str) and len(value) >= 64 and _is_blob(value):
            return True
    return False


def scan_request(
    detector: PIIDetector,
    body: Mapping[str, Any],
    deadline: float | None = None,
    known: frozenset[str] = frozenset(),
) -> RequestScan:
    """The kinds anywhere in the body, across string boundaries too; raises ScanTimeout.

    `deadline` is a `time.perf_counter()` value, checked between strings and inside the loops
    that can run long on one string. `known`: identifiers the operator configured (the model
    names served), skipped where an identifier belongs.
    """
    token = DEADLINE.set(deadline)
    try:
        return _scan(detector, body, deadline, known)
    finally:
        DEADLINE.reset(token)


def _scan(
    detector: PIIDetector,
    body: Mapping[str, Any],
    deadline: float | None,
    known: frozenset[str],
) -> RequestScan:
    texts, unscannable = _scan_texts(body, known)
    result = RequestScan(unscannable=unscannable)
    found = result.kinds
    previous: str | None = None
    for text, verbatim in texts:
        if deadline is not None and time.perf_counter() > deadline:
            raise ScanTimeout
        found |= detector.kinds_in(text)
        if "\\u" in text:
            # JSON written with ensure_ascii (tool arguments): 号 becomes \u53f7, whose trailing
            # 7 would glue onto the phone number after it
            found |= detector.kinds_in(_JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
        if not verbatim:
            if previous is not None:
                found |= {f.kind for f in _boundary_findings(detector, previous, text)}
            # what comes before the next boundary: a short text carries the one before it, so
            # a value cut into three strings or more ("138" "1234" "5678") is still whole there
            previous = text if len(text) >= _BOUNDARY else (previous or "")[-_BOUNDARY:] + text
    return result


def _scan_texts(
    body: Any, known: frozenset[str] = frozenset()
) -> tuple[list[tuple[str, bool]], bool]:
    """The texts `iter_leaves` yields, in its order, with whether each is verbatim, and whether
    the body holds unscannable content: one walk, no paths (the scan runs on every request)."""
    texts: list[tuple[str, bool]] = []
    unscannable = False
    # (value, its key, depth, the top-level key above it, inside a verbatim tree)
    stack: list[tuple[Any, str | None, int, str | None, bool]] = [(body, None, 0, None, False)]
    while stack:
        value, key, depth, top, verbatim = stack.pop()
        if isinstance(value, str):
            if not verbatim and key is not None:
                if key == "name":  # a message's author name is free text; others identifiers
                    verbatim = not (depth == 3 and top == "messages")
                else:
                    verbatim = key in _VERBATIM_KEYS
            if not (verbatim and (value in _PROTOCOL_WORDS or value in known)):
                texts.append((value, verbatim))
            if not unscannable and len(value) >= 64 and _is_blob(value):
                unscannable = True
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int | float):
            text = str(value) if type(value) is int else _number_text(value)
            if len(text) >= _SHORTEST_NUMBER:
                texts.append((text, True))
        elif isinstance(value, Mapping):
            kind = value.get("type")  # a JSON schema's type may be a list: unhashable
            if isinstance(kind, str) and kind in _UNSCANNABLE_PARTS:
                unscannable = True
            children = []
            for k, child in value.items():
                key_text = str(k)
                if key_text not in _PROTOCOL_WORDS:
                    texts.append((key_text, True))
                below = top if depth else key_text
                children.append(
                    (child, key_text, depth + 1, below, verbatim or k in _VERBATIM_TREES)
                )
            stack.extend(reversed(children))
        elif isinstance(value, list | tuple):
            if top in _TOKEN_FIELDS and _is_tokens(value):
                unscannable = True  # token ids: text in the cloud's tokenizer, not ours
            stack.extend((child, None, depth + 1, top, verbatim) for child in reversed(value))
    return texts, unscannable


def _number_text(value: int | float) -> str:
    """A number as a person reads it: 13812345678.0 (a float in JSON, from a JavaScript client) is
    13812345678."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_tokens(value: list[Any] | tuple[Any, ...]) -> bool:
    first = value[0] if value else None
    return isinstance(first, int) and not isinstance(first, bool)


def _boundary_findings(detector: PIIDetector, before: str, after: str) -> list[Any]:
    """Findings that straddle the end of `before` and the start of `after` read as one text."""
    tail, head = before[-_BOUNDARY:], after[:_BOUNDARY]
    # a value can only be split between two characters that could both belong to it
    if not (tail.rstrip()[-1:].isalnum() and head.lstrip()[:1].isalnum()):
        return []
    cut = len(tail)
    straddling = [f for f in detector.scan(tail + head) if f.start < cut < f.end]
    if not straddling:
        return []
    # not one that only grew a value already whole on one side (li.na@example.com + "for …")
    own = [(f.start, f.end) for f in detector.scan(tail)]
    own += [(f.start + cut, f.end + cut) for f in detector.scan(head)]
    return [f for f in straddling if not any(s < f.end and f.start < e for s, e in own)]


# --- masking -------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_[0-9]+>")


def mask_request(
    detector: PIIDetector, body: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of `body` with personal data in every free-text value replaced by placeholders,
    and placeholder -> original. Verbatim values are left as they are (check the result)."""
    leaves = list(iter_leaves(body))
    placeholders = Placeholders({p for leaf in leaves for p in _PLACEHOLDER.findall(leaf.text)})
    # spans to replace, per string: its own findings, and the pieces of values split across two
    extra: dict[Path, list[tuple[str, int, int]]] = {}
    free = [leaf for leaf in leaves if not leaf.verbatim]
    for before, after in itertools.pairwise(free):
        tail_start = max(0, len(before.text) - _BOUNDARY)
        tail_len = len(before.text) - tail_start
        for finding in _boundary_findings(detector, before.text, after.text):
            extra.setdefault(before.path, []).append(
                (finding.kind, tail_start + finding.start, len(before.text))
            )
            extra.setdefault(after.path, []).append((finding.kind, 0, finding.end - tail_len))
    rewritten: dict[Path, str] = {}
    for leaf in free:
        spans = [(f.kind, f.start, f.end) for f in detector.scan(leaf.text)]
        spans += extra.get(leaf.path, [])
        if spans:
            rewritten[leaf.path] = _replace(leaf.text, spans, placeholders)
    return _rebuild(body, rewritten, ()), placeholders.mapping


def _replace(text: str, spans: list[tuple[str, int, int]], placeholders: Placeholders) -> str:
    pieces: list[str] = []
    end = 0
    for kind, start, stop in sorted(spans, key=lambda s: (s[1], -s[2])):
        if start < end:  # overlaps one already replaced
            continue
        pieces += (text[end:start], placeholders.for_value(kind, text[start:stop]))
        end = stop
    pieces.append(text[end:])
    return "".join(pieces)


def _rebuild(value: Any, rewritten: dict[Path, str], path: Path) -> Any:
    """A copy of `value` with the strings at the rewritten paths replaced (iterative copy would
    be longer; a body reaching here passed the parser's depth limit)."""
    if isinstance(value, str):
        return rewritten.get(path, value)
    if isinstance(value, Mapping):
        return {key: _rebuild(child, rewritten, (*path, str(key))) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [_rebuild(child, rewritten, (*path, i)) for i, child in enumerate(value)]
    return value


# --- restoring the answer ------------------------------------------------------------------------


def unmask_tree(value: Any, mapping: Mapping[str, str]) -> Any:
    """`value` with placeholders restored in every string at any depth (in place for containers)."""
    if isinstance(value, str):
        return unmask(value, mapping)
    if isinstance(value, dict):
        for key, child in value.items():
            value[key] = unmask_tree(child, mapping)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            value[index] = unmask_tree(child, mapping)
    return value


class StreamRestorer:
    """Restore placeholders in every text field of streamed chunks: content, reasoning_content,
    refusal, tool-call arguments, legacy text; a placeholder may be split across chunks.

    Each field has its own unmasker. Reasoning comes before content: what its unmasker still
    holds when the content starts goes out with that chunk, not after the answer.
    """

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self.unmaskers: dict[tuple[Any, ...], StreamUnmasker] = {}

    def chunk(self, payload: dict[str, Any]) -> dict[str, Any]:
        for choice in payload.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._feed(delta, "reasoning_content", (index, "reasoning_content"))
                if delta.get("content"):
                    self._release(index, "reasoning_content", delta)
                for key in ("content", "refusal"):
                    self._feed(delta, key, (index, key))
                for call in delta.get("tool_calls") or []:
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        self._feed(function, "arguments", (index, "tool", call.get("index", 0)))
                        if isinstance(function.get("name"), str):
                            function["name"] = unmask(function["name"], self.mapping)
            else:
                self._feed(choice, "text", (index, "text"))
            if choice.get("finish_reason") is not None:
                self._flush(choice, index)
        return payload

    def _feed(self, holder: dict[str, Any], key: str, slot: tuple[Any, ...]) -> None:
        text = holder.get(key)
        if isinstance(text, str):
            unmasker = self.unmaskers.get(slot)
            if unmasker is None:
                unmasker = self.unmaskers[slot] = StreamUnmasker(self.mapping)
            holder[key] = unmasker.feed(text)

    def _release(self, index: Any, key: str, holder: dict[str, Any]) -> None:
        unmasker = self.unmaskers.pop((index, key), None)
        rest = unmasker.flush() if unmasker is not None else ""
        if rest:
            holder[key] = (holder.get(key) or "") + rest

    def _flush(self, choice: dict[str, Any], index: Any) -> None:
        """Release what each of this choice's fields still holds, into the finishing chunk."""
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            self._release(index, "text", choice)
            choice.setdefault("text", choice.get("text") or "")
            return
        for slot in [slot for slot in self.unmaskers if slot[0] == index]:
            if slot[1] != "tool":
                self._release(index, slot[1], delta)
                continue
            rest = self.unmaskers.pop(slot).flush()
            if rest:
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": slot[2], "function": {"arguments": rest}})
        delta["content"] = delta.get("content") or ""  # set even when empty, as clients expect

    def close(self) -> list[dict[str, Any]]:
        return []
