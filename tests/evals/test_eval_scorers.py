"""Each scorer on answers known to be right and known to be wrong."""

from __future__ import annotations

from decimal import Decimal

import pytest

from thrifty.evals.judge import generic_prompt, mt_bench_prompt, parse_rating
from thrifty.evals.runner import extract_code, humaneval_program
from thrifty.evals.scorers import (
    choice,
    contains,
    exact,
    extract_choice,
    final_number,
    json_schema,
    numeric,
    regex,
)


def test_exact() -> None:
    assert exact("  Paris\n", "Paris").passed
    assert not exact("paris", "Paris").passed
    assert not exact("Paris, France", "Paris").passed


def test_contains_ignores_case() -> None:
    assert contains("The capital is PARIS.", "paris").passed
    assert not contains("The capital is Lyon.", "Paris").passed


def test_regex() -> None:
    assert regex("order #A-1234 shipped", r"#A-\d{4}\b").passed
    assert not regex("order #A-12 shipped", r"#A-\d{4}\b").passed
    with pytest.raises(ValueError, match="bad regex"):
        regex("x", "(")


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("She sells 9 eggs at $2 each.\n#### 18", "18"),
        ("Step 1: 3 + 4 = 7. The answer is $1,234.50.", "1234.50"),
        ("so x = \\boxed{-3}", "-3"),
        ("First 5, then 10, finally 15", "15"),
        ("It costs 0.5 dollars.", "0.5"),
    ],
)
def test_final_number(answer: str, number: str) -> None:
    assert final_number(answer) == Decimal(number)


def test_numeric() -> None:
    assert numeric("16 - 3 - 4 = 9, 9 * 2 = 18\n#### 18", "18").passed
    assert numeric("The answer is 1,000", 1000).passed
    assert numeric("3.0", 3).passed
    wrong = numeric("16 - 3 - 4 = 9\n#### 9", "18")
    assert not wrong.passed and wrong.detail == "answered 9"
    assert numeric("no idea", "5").detail == "no number in the answer"
    with pytest.raises(ValueError):
        numeric("5", "five")


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("The answer is (C).", "C"),
        ("Answer: D. Because ...", "D"),
        ("A. Paris is the capital", "A"),
        ("I think it is (b)", "B"),
        ("**C**", "C"),
        ("None of these", None),
    ],
)
def test_extract_choice(answer: str, letter: str | None) -> None:
    assert extract_choice(answer) == letter


def test_choice() -> None:
    assert choice("The answer is B", "B").passed
    assert not choice("The answer is A", "B").passed
    assert choice("I would say E", "E").passed  # letters beyond D count when expected
    with pytest.raises(ValueError):
        choice("A", "Paris")


def test_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
    }
    assert json_schema('{"name": "Ada", "age": 36}', schema).passed
    assert json_schema('Sure!\n```json\n{"name": "Ada", "age": 36}\n```', schema).passed
    assert not json_schema('{"name": "Ada", "age": -1}', schema).passed
    assert not json_schema('{"name": "Ada"}', schema).passed
    assert json_schema("not json at all", schema).detail == "no JSON in the answer"


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("Good answer. Rating: [[8]]", 8.0),
        ("The response is poor [[2.5]]", 2.5),
        ("Rating: [7]", 7.0),
        ("rating: 6", 6.0),
        ("Rating: [[11]]", None),
        ("no verdict", None),
    ],
)
def test_parse_rating(reply: str, rating: float | None) -> None:
    assert parse_rating(reply) == rating


def test_judge_prompts() -> None:
    prompt = generic_prompt([{"role": "user", "content": "Why is the sky blue?"}], "Rayleigh", "x")
    assert "Why is the sky blue?" in prompt[0]["content"]
    assert "[The Start of Reference Answer]\nx" in prompt[0]["content"]
    turns, answers = ["What is 2+2?", "And 3+3?"], ["4", "6"]
    two = mt_bench_prompt(turns, answers, "math", ["4", "6"])
    assert "Reference answer" in two[1]["content"] and "### Assistant A:\n6" in two[1]["content"]
    one = mt_bench_prompt(turns[:1], answers[:1], "writing", None)
    assert "[Question]\nWhat is 2+2?" in one[1]["content"]


def test_humaneval_program_takes_a_whole_function_or_a_body() -> None:
    prompt = 'def add(a, b):\n    """Add."""\n'
    test = "def check(f):\n    assert f(2, 3) == 5\n"
    whole = "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    program = humaneval_program(whole, prompt=prompt, test=test, entry_point="add")
    namespace: dict[str, object] = {}
    exec(program, namespace)  # the checked program is plain Python; check() ran without error
    body = humaneval_program("    return a + b\n", prompt=prompt, test=test, entry_point="add")
    exec(body, {})
    assert extract_code("```python\nx = 1\n") == "x = 1\n"  # cut off before the closing fence
    assert extract_code("x = 2") == "x = 2"
    assert extract_code("def f():\n    pass\n```\n\nThis is f.") == "def f():\n    pass\n"
    assert extract_code("Here:\n```\nimport os\n```\nDone") == "import os\n"
