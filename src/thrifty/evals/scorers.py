"""Pass/fail scorers that need nothing but the answer text and the expected value.

Each takes ``(answer, expected)`` and returns a `Verdict`. Code execution (HumanEval) lives in
`thrifty.evals.sandbox`, and LLM-as-judge ratings in `thrifty.evals.judge`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True, slots=True)
class Verdict:
    """One scored answer: ``score`` is 0/1 for pass/fail scorers and 1–10 for judged ones."""

    score: float
    passed: bool | None  # None for ratings
    detail: str = ""


def _verdict(ok: bool, detail: str = "") -> Verdict:
    return Verdict(1.0 if ok else 0.0, ok, detail)


def exact(answer: str, expected: Any) -> Verdict:
    """The answer, stripped of surrounding whitespace, equals the expected text."""
    return _verdict(answer.strip() == str(expected).strip())


def contains(answer: str, expected: Any) -> Verdict:
    """The expected text occurs in the answer, ignoring case."""
    return _verdict(str(expected).casefold() in answer.casefold())


def regex(answer: str, expected: Any) -> Verdict:
    """The expected regular expression matches somewhere in the answer (``re.search``)."""
    try:
        found = re.search(str(expected), answer)
    except re.error as exc:
        raise ValueError(f"bad regex {expected!r}: {exc}") from None
    return _verdict(found is not None)


# -- numbers --------------------------------------------------------------------------------------

_NUMBER = r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\.\d+"
_FINAL = (
    re.compile(r"####\s*(" + _NUMBER + ")"),  # GSM8K's own convention
    re.compile(r"answer is[:\s]*\**\s*(" + _NUMBER + ")", re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(" + _NUMBER + r")\s*\}"),
)


def parse_number(text: str) -> Decimal | None:
    """``"$1,234.50"`` → ``Decimal("1234.50")``; None when it is not a number."""
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def final_number(answer: str) -> Decimal | None:
    """The answer's final number: after ``####``, "the answer is", ``\\boxed{}``, else the last."""
    for pattern in _FINAL:
        matches = pattern.findall(answer)
        if matches:
            return parse_number(matches[-1])
    numbers = re.findall(_NUMBER, answer)
    return parse_number(numbers[-1]) if numbers else None


def numeric(answer: str, expected: Any) -> Verdict:
    """The answer's final number equals the expected number (to a relative 1e-6)."""
    want = expected if isinstance(expected, Decimal) else parse_number(str(expected))
    if want is None:
        raise ValueError(f"expected value {expected!r} is not a number")
    got = final_number(answer)
    if got is None:
        return _verdict(False, "no number in the answer")
    ok = abs(got - want) <= max(abs(want), Decimal(1)) * Decimal("1e-6")
    return _verdict(ok, f"answered {got}")


# -- multiple choice ------------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJ"
_CHOICE_CUES = (  # most explicit first; only "(b)" may be lower case ("a" is also a word)
    re.compile(r"[Aa]nswer is[:\s]*\(?\**([A-J])\b"),
    re.compile(r"[Aa]nswer[:\s]+\(?\**([A-J])\b"),
    re.compile(r"^\s*\(?\**([A-J])\**\)?(?:[.:)\s]|$)", re.MULTILINE),
    re.compile(r"\(([A-Ja-j])\)"),
    re.compile(r"\b([A-J])\b"),
)


def extract_choice(answer: str, letters: str = "ABCD") -> str | None:
    """The letter the answer picks: an explicit "answer is X" first, else the first lone letter."""
    for cue in _CHOICE_CUES:
        for found in cue.finditer(answer):
            letter = found.group(1).upper()
            if letter in letters:
                return letter
    return None


def choice(answer: str, expected: Any) -> Verdict:
    """The letter the answer picks equals the expected letter."""
    want = str(expected).strip().upper()
    if len(want) != 1 or want not in LETTERS:
        raise ValueError(f"expected choice {expected!r} is not a letter A-J")
    got = extract_choice(answer, LETTERS[: max(4, LETTERS.index(want) + 1)])
    return _verdict(got == want, f"picked {got}" if got else "no choice found")


# -- JSON -----------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)


def extract_json(answer: str) -> Any:
    """The JSON value in the answer: the whole text, a fenced block, or the first {...}/[...]."""
    candidates = [answer.strip(), *(m.strip() for m in _FENCE.findall(answer))]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = answer.find(opener), answer.rfind(closer)
        if 0 <= start < end:
            candidates.append(answer[start : end + 1])
    for text in candidates:
        try:
            return json.loads(text)
        except ValueError:
            continue
    raise ValueError("no JSON in the answer")


def json_schema(answer: str, expected: Any) -> Verdict:
    """The answer holds JSON that validates against the JSON Schema in ``expected``."""
    try:
        import jsonschema
    except ModuleNotFoundError:
        from thrifty.extras import install_hint

        msg = f"the json-schema scorer needs jsonschema: {install_hint('eval')}"
        raise RuntimeError(msg) from None
    try:
        value = extract_json(answer)
    except ValueError as exc:
        return _verdict(False, str(exc))
    try:
        jsonschema.validate(value, expected)
    except jsonschema.ValidationError as exc:
        return _verdict(False, exc.message[:200])
    return _verdict(True)


Scorer = Callable[[str, Any], Verdict]

SCORERS: dict[str, Scorer] = {
    "exact": exact,
    "regex": regex,
    "contains": contains,
    "numeric": numeric,
    "choice": choice,
    "json-schema": json_schema,
}
