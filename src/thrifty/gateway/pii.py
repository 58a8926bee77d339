"""Personal-data detection, masking and unmasking for routing decisions.

A prompt that carries personal data must never reach a cloud upstream, so the router asks
`PIIDetector.scan_messages` on every request: it is on the hot path, and built for it.

How a text is scanned (`PIIDetector._spans`):

1. Full-width forms (`１３８…`, `＠`) are translated 1:1 to ASCII, and zero-width and other
   format characters are dropped (`_pii_forms.strip_format`, with a map back to the original
   offsets), so every span is a span of the original text.
2. Text with no digit, '@' or ':' can hold only a spelled-out email (`li.na at example dot com`).
3. One combined regex finds every digit-bearing candidate (ID, phone, cards, IPv4, SSN, Chinese
   passport) in a single pass; validators (checksums, dates, Luhn, ranges) run only on candidates.
   A second pass joins digit groups split any way (`1101.0519.9003.0712.39`, `1381 2345 678`)
   and judges the joined digits with the same validators (`_pii_forms`).
4. Keywords are found in one pass (`_pii_keyed.keyword_hits`); the kinds that are known only by
   the word before them (other countries' passports, social-insurance and medical-record numbers,
   plates outside China, phones after "phone"/"电话") look only after their keyword.
5. A street address (`_pii_names`) is reported with the person's name near it; for Chinese the
   name search may load a segmenter (jieba), and only when an address was found.
6. A token in an encoding read at a glance (percent-encoding, HTML character references, base64
   of text) is decoded and scanned again; a finding there is the whole token (`_pii_encoded`).

Kinds (`PII_KINDS`): `id_card`, `phone` (mainland mobiles and landlines), `bank_card`,
`credit_card`, `email`, `ip_address`, `passport`, `us_ssn`, `intl_phone` (E.164 and North
American numbers), `license_plate`, `social_insurance`, `medical_record`, `name_address`.
A card number is reported once: `credit_card` when its prefix and length belong to Visa,
Mastercard, Amex or JCB, `bank_card` otherwise (UnionPay 62…, domestic debit).
A digit-bearing number inside a longer run of digits (an order number) is never reported.

`Masker` replaces findings with typed placeholders (`<PHONE_1>`) so a request may leave with the
data masked out, and restores them in the answer; `StreamUnmasker` does the same for a streamed
answer whose deltas can split a placeholder. Matched values live only in memory: `Finding`'s repr
leaves the value out, and nothing here logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.gateway import _pii_encoded as encoded
from thrifty.gateway import _pii_forms as forms
from thrifty.gateway import _pii_keyed as keyed
from thrifty.gateway import _pii_names as names
from thrifty.gateway import _pii_rules as rules
from thrifty.gateway.memo import TextMemo

PII_KINDS: frozenset[str] = rules.ALL_KINDS
_ENCODED_DEPTH = 2  # base64 of a percent-encoded URL is read; one more layer is not


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int  # offsets into the scanned (original) text
    end: int
    # The matched original text, kept out of repr so that a logged Finding never holds it.
    value: str = field(repr=False)


class PIIDetector:
    """Finds personal data in text; build one per configuration and share it (it is stateless)."""

    def __init__(self, kinds: Iterable[str] | None = None, *, segmenter: bool = True) -> None:
        if isinstance(kinds, str):
            raise TypeError("kinds must be an iterable of kind names, not one string")
        chosen = PII_KINDS if kinds is None else frozenset(kinds)
        unknown = chosen - PII_KINDS
        if unknown:
            raise ValueError(
                f"unknown PII kind(s) {sorted(unknown)}; known kinds: {sorted(PII_KINDS)}"
            )
        self.kinds: frozenset[str] = chosen
        self._numeric = rules.numeric_pattern(chosen)
        # the Chinese name finder's segmenter (jieba), loaded on the first address that needs it
        self._segmenter = names.segmenter if segmenter else _no_segmenter
        self._memo = TextMemo(lambda text: frozenset(self._kinds_in(text)))

    def scan(self, text: str) -> list[Finding]:
        """Every finding, sorted by start; of overlapping ones the longest earliest wins."""
        findings: list[Finding] = []
        end = 0
        for kind, start, stop in sorted(self._spans(text), key=lambda s: (s[1], -s[2])):
            if start >= end:
                findings.append(Finding(kind, start, stop, text[start:stop]))
                end = stop
        return findings

    def kinds_in(self, text: str) -> set[str]:
        """The kinds present, stopping once every enabled kind is seen.

        Overlaps are not resolved here, so a phone number used as an email's local part counts as
        both: for a routing decision more caution is the right error.

        A long text seen lately is not scanned again (`memo.py`): a chat resends its history.
        """
        if len(text) < self._memo.min_chars:
            return self._kinds_in(text)  # as fast as looking it up: no copies either
        return set(self._memo(text))

    def _kinds_in(self, text: str) -> set[str]:
        found: set[str] = set()
        for kind, _, _ in self._spans(text):
            found.add(kind)
            if len(found) == len(self.kinds):
                break
        return found

    def scan_messages(self, messages: Sequence[Mapping[str, Any]]) -> set[str]:
        """The kinds anywhere in a chat: every role and turn, text parts, names, tool calls."""
        found: set[str] = set()
        for message in messages:
            for text in iter_message_texts(message):
                found |= self.kinds_in(text)
                if "\\u" in text:
                    # JSON written with ensure_ascii (tool arguments, tool results): 号 becomes
                    # \u53f7, whose trailing 7 would glue onto the phone number after it.
                    found |= self.kinds_in(_unescape_json(text))
                if len(found) == len(self.kinds):
                    return found
        return found

    def _spans(self, text: str, depth: int = 0) -> Iterator[rules.Span]:
        folded, index = forms.strip_format(rules.fold_fullwidth(text))
        if index is None:
            yield from self._folded_spans(folded, depth)
        else:
            for span in self._folded_spans(folded, depth):
                yield forms.map_span(span, index)

    def _folded_spans(self, folded: str, depth: int = 0) -> Iterator[rules.Span]:
        if depth < _ENCODED_DEPTH:
            # a token that decodes to text (percent-encoding, character references, base64):
            # what the decoded text holds is reported as the whole token
            for start, end, decoded in encoded.decoded_tokens(folded):
                for kind in {span[0] for span in self._spans(decoded, depth + 1)}:
                    yield kind, start, end
        kinds = self.kinds
        email = rules.EMAIL in kinds
        if not rules.may_contain_pii(folded):
            if email and forms.may_spell_email(folded):
                yield from forms.iter_spelled_emails(folded)
            return
        if self._numeric is not None:
            yield from rules.iter_numeric(self._numeric, folded, kinds)
            yield from forms.iter_joined_digits(folded, kinds)
        if email:
            if "@" in folded:
                yield from rules.iter_emails(folded)
            if forms.may_spell_email(folded):
                yield from forms.iter_spelled_emails(folded)
        if rules.IP_ADDRESS in kinds:
            yield from rules.iter_ipv6(folded)
        hits = keyed.keyword_hits(folded, folded.lower())
        if rules.ID_CARD in kinds and keyed.ID_WORDS in hits:
            yield from keyed.iter_old_ids(folded, hits[keyed.ID_WORDS])
        if rules.PASSPORT in kinds and keyed.PASSPORT_WORDS in hits:
            yield from rules.iter_passport_after(folded, hits[keyed.PASSPORT_WORDS])
        if kinds & _PHONE_KINDS:
            yield from keyed.iter_phones(folded, kinds, hits)
        if rules.LICENSE_PLATE in kinds:
            yield from keyed.iter_plates(folded, hits)
        if kinds & _KEYED_KINDS and hits:
            yield from keyed.iter_keyed(folded, kinds, hits)
        if rules.NAME_ADDRESS in kinds:
            if "号" in folded:
                yield from names.iter_zh(folded, self._segmenter)
            yield from names.iter_en(folded)


def _no_segmenter() -> None:
    return None


_PHONE_KINDS = frozenset({rules.PHONE, rules.INTL_PHONE})
_KEYED_KINDS = frozenset({rules.SOCIAL_INSURANCE, rules.MEDICAL_RECORD, rules.US_SSN})


# --- where text lives in an OpenAI chat message --------------------------------------------------
# `iter_message_texts` (read) and `rewrite_message_texts` (copy with new text) must agree on the
# fields: content (a string or a list of parts, of which only text parts), reasoning_content (a
# thinking model's reasoning, which clients send back in tool-calling turns), name, and the
# arguments of tool calls and of the legacy function_call.


_JSON_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")


def _unescape_json(text: str) -> str:
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def iter_message_texts(message: Mapping[str, Any]) -> Iterator[str]:
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if _is_text_part(part):
                yield part["text"]
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str):
        yield reasoning
    name = message.get("name")
    if isinstance(name, str):
        yield name
    for call in _function_calls(message):
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            yield arguments


def rewrite_message_texts(
    message: Mapping[str, Any], rewrite: Callable[[str], str]
) -> dict[str, Any]:
    """A new message dict with `rewrite` applied to every text `iter_message_texts` yields."""
    out = dict(message)
    content = message.get("content")
    if isinstance(content, str):
        out["content"] = rewrite(content)
    elif isinstance(content, list):
        out["content"] = [_rewrite_part(part, rewrite) for part in content]
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str):
        out["reasoning_content"] = rewrite(reasoning)
    name = message.get("name")
    if isinstance(name, str):
        # A masked name is no longer a valid OpenAI name, so an upstream refuses the request:
        # failing closed beats sending the name.
        out["name"] = rewrite(name)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        out["tool_calls"] = [_rewrite_tool_call(call, rewrite) for call in tool_calls]
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping):
        out["function_call"] = _rewrite_arguments(function_call, rewrite)
    return out


def _is_text_part(part: object) -> bool:
    return (
        isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def _function_calls(message: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                yield function
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping):
        yield function_call


def _rewrite_part(part: Any, rewrite: Callable[[str], str]) -> Any:
    if _is_text_part(part):
        return {**part, "text": rewrite(part["text"])}
    return dict(part) if isinstance(part, Mapping) else part


def _rewrite_tool_call(call: Any, rewrite: Callable[[str], str]) -> Any:
    if not isinstance(call, Mapping):
        return call
    out = dict(call)
    function = call.get("function")
    if isinstance(function, Mapping):
        out["function"] = _rewrite_arguments(function, rewrite)
    return out


def _rewrite_arguments(
    function: Mapping[str, Any], rewrite: Callable[[str], str]
) -> dict[str, Any]:
    out = dict(function)
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        out["arguments"] = rewrite(arguments)
    return out


# --- masking -------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_[0-9]+>")


class Placeholders:
    """Hands out `<KIND_n>` per kind; one value always gets the same placeholder."""

    def __init__(self, taken: set[str]) -> None:
        self._taken = taken  # placeholder-shaped strings already in the prompt: never reuse them
        self._by_value: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self.mapping: dict[str, str] = {}  # placeholder -> original value

    def for_value(self, kind: str, value: str) -> str:
        placeholder = self._by_value.get(value)
        if placeholder is None:
            placeholder = self._next(kind)
            self._by_value[value] = placeholder
            self.mapping[placeholder] = value
        return placeholder

    def _next(self, kind: str) -> str:
        count = self._counts.get(kind, 0)
        while True:
            count += 1
            placeholder = f"<{kind.upper()}_{count}>"
            if placeholder not in self._taken:
                self._counts[kind] = count
                return placeholder


class Masker:
    """Replace PII with typed placeholders before a request leaves; restore them in the answer.

    It masks what `PIIDetector.scan` finds in each text as written. PII that shows only once
    JSON escapes are decoded (`\\u53f713812345678`) is not masked, so check the masked messages
    with `scan_messages` before they leave, and keep the request local if anything is left.
    """

    def __init__(self, detector: PIIDetector) -> None:
        self.detector = detector

    def mask_messages(
        self, messages: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """New message dicts with PII masked (inputs untouched), and placeholder -> value."""
        taken = {
            found
            for message in messages
            for text in iter_message_texts(message)
            for found in _PLACEHOLDER.findall(text)
        }
        placeholders = Placeholders(taken)
        masked = [
            rewrite_message_texts(message, lambda text: self._mask_text(text, placeholders))
            for message in messages
        ]
        return masked, placeholders.mapping

    def unmask(self, text: str, mapping: dict[str, str]) -> str:
        return unmask(text, mapping)

    def _mask_text(self, text: str, placeholders: Placeholders) -> str:
        findings = self.detector.scan(text)
        if not findings:
            return text
        pieces: list[str] = []
        end = 0
        for finding in findings:
            pieces += (
                text[end : finding.start],
                placeholders.for_value(finding.kind, finding.value),
            )
            end = finding.end
        pieces.append(text[end:])
        return "".join(pieces)


# A number long enough to be part of an identifier, with the separators people write in one.
_LONG_NUMBER = re.compile(r"[0-9](?:[ .\-/]?[0-9]){5,}")


def redact(detector: PIIDetector, text: str) -> str:
    """`text` as it may be stored: each finding replaced by `<KIND>`, and any other run of six or
    more digits by `<NUMBER>` (an excerpt may have cut a value so that no rule knows it)."""
    pieces: list[str] = []
    end = 0
    for finding in detector.scan(text):
        pieces += (text[end : finding.start], f"<{finding.kind.upper()}>")
        end = finding.end
    pieces.append(text[end:])
    return _LONG_NUMBER.sub("<NUMBER>", "".join(pieces))


def unmask(text: str, mapping: Mapping[str, str]) -> str:
    """Put the original values back; placeholder-shaped text not in `mapping` is left as it is."""
    if not mapping or "<" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)


class StreamUnmasker:
    """Restore placeholders in a streamed answer whose deltas may split one (`<PHO` + `NE_1>`)."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self._mapping = dict(mapping)
        # Every proper prefix of a placeholder: a buffer ending in one of these must wait.
        self._partials = frozenset(key[:i] for key in self._mapping for i in range(1, len(key)))
        self._longest = max(map(len, self._mapping), default=0)
        self._pending = ""

    def feed(self, delta: str) -> str:
        """Text safe to emit now; a possible start of a placeholder is held back."""
        buffer = self._pending + delta
        hold = self._held_from(buffer)
        self._pending = buffer[hold:]
        return unmask(buffer[:hold], self._mapping)

    def flush(self) -> str:
        """What is still held at the end of the stream (never a whole placeholder)."""
        rest, self._pending = self._pending, ""
        return rest

    def _held_from(self, buffer: str) -> int:
        # A placeholder holds one '<', at its start, so only the last '<' can open a partial one.
        start = buffer.rfind("<", max(0, len(buffer) - self._longest + 1))
        if start != -1 and buffer[start:] in self._partials:
            return start
        return len(buffer)
