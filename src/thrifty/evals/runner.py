"""Run a suite against an endpoint: ask, score, store each item as it finishes.

Items run ``concurrency`` at a time on one event loop. Each scored item is committed before the
next starts, so Ctrl-C (which cancels the in-flight calls) loses only those, and the same run id
resumes where it stopped. A call that fails for a reason that may pass (network, 5xx, 429, a judge
reply without a rating) is not stored: a resume asks again. A request the endpoint refuses (4xx)
is stored as a wrong answer with its error, since asking again would get the same refusal.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from thrifty.evals import judge, store
from thrifty.evals.endpoint import Endpoint, EndpointError, Reply
from thrifty.evals.sandbox import Limits, run_python
from thrifty.evals.scorers import SCORERS, Verdict
from thrifty.evals.suites import Item, Suite


class RunError(RuntimeError):
    """A run that cannot start or go on (wrong resume, no judge, endpoint down)."""


@dataclass(slots=True)
class RunConfig:
    """What `run_suite` runs, and how."""

    run_id: str
    suite: Suite
    source: str  # the suite as the user named it: a built-in name or a JSONL path
    model: str
    endpoint: Endpoint
    limit: int | None = None
    concurrency: int = 1
    max_tokens: int | None = None  # None: the suite's default
    judge_model: str | None = None
    sandbox: Limits = field(default_factory=Limits)


@dataclass(slots=True)
class Outcome:
    """What one invocation did."""

    run: store.Run
    planned: int
    skipped: int  # already done by an earlier invocation
    scored: int = 0
    failed: int = 0  # transient failures, left for a resume
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.skipped + self.scored == self.planned


class Progress:
    """A one-line progress bar with ETA on stderr, redrawn with ``\\r``."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: int, fresh: int, correct: float, final: bool = False) -> None:
        """``done`` of ``total`` stored, ``fresh`` of them in this invocation."""
        now = time.monotonic()
        if not final and now - self._drawn < 0.2:
            return
        self._drawn = now
        elapsed = now - self.started
        width = 24
        filled = width * done // max(self.total, 1)
        eta = "--:--"
        if fresh and done < self.total:
            eta = _clock(elapsed / fresh * (self.total - done))
        elif done >= self.total:
            eta = "0:00"
        score = f"score {correct / done:.3g}" if done else "score -"
        line = (
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"{score}  elapsed {_clock(elapsed)}  ETA {eta} "
        )
        self.stream.write(line + ("\n" if final else ""))
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def run_suite(
    conn: sqlite3.Connection,
    config: RunConfig,
    *,
    progress: Progress | None = None,
    on_item: Callable[[store.ItemResult], None] | None = None,
) -> Outcome:
    """Run (or resume) ``config.run_id``; KeyboardInterrupt leaves it resumable and re-raises."""
    suite = config.suite
    if suite.rated and not config.judge_model:
        raise RunError(f"suite {suite.name!r} is judged: give --judge-model")
    items = suite.items[: config.limit] if config.limit else suite.items
    previous = store.get_run(conn, config.run_id)
    if previous and (previous.suite, previous.model) != (suite.name, config.model):
        raise RunError(
            f"run {config.run_id!r} is {previous.suite} × {previous.model}, "
            f"not {suite.name} × {config.model}: choose another --run-id"
        )
    params: dict[str, Any] = {
        "max_tokens": config.max_tokens or suite.max_tokens,
        "limit": config.limit,
        "judge_model": config.judge_model,
    }
    run = store.start_run(
        conn,
        config.run_id,
        suite=suite.name,
        source=config.source,
        model=config.model,
        base_url=config.endpoint.base_url,
        rated=suite.rated,
        planned=len(items),
        params=params,
    )
    done = store.done_items(conn, config.run_id)
    todo = [(n, item) for n, item in enumerate(items) if item.id not in done]
    outcome = Outcome(run, planned=len(items), skipped=len(items) - len(todo))
    try:
        asyncio.run(_run_all(conn, config, todo, outcome, progress, on_item))
    except KeyboardInterrupt:
        store.finish_run(conn, config.run_id, "interrupted")
        raise
    store.finish_run(conn, config.run_id, "done" if outcome.complete else "incomplete")
    return outcome


async def _run_all(
    conn: sqlite3.Connection,
    config: RunConfig,
    todo: list[tuple[int, Item]],
    outcome: Outcome,
    progress: Progress | None,
    on_item: Callable[[store.ItemResult], None] | None,
) -> None:
    pending = iter(todo)
    total_score = sum(r.score for r in store.items(conn, config.run_id))
    consecutive_failures = 0
    give_up = max(5, 2 * config.concurrency)

    def report(final: bool = False) -> None:
        if progress is not None:
            done = outcome.skipped + outcome.scored
            progress.update(done, outcome.scored, total_score, final)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal total_score, consecutive_failures
        for position, item in pending:
            try:
                result = await _evaluate(session, config, position, item)
            except EndpointError as exc:
                outcome.failed += 1
                outcome.errors.append(f"{item.id}: {exc}")
                consecutive_failures += 1
                if consecutive_failures >= give_up:
                    raise RunError(
                        f"{consecutive_failures} calls in a row failed, the last: {exc}"
                    ) from None
                continue
            consecutive_failures = 0
            store.save_item(conn, config.run_id, result)
            outcome.scored += 1
            total_score += result.score
            report()
            if on_item is not None:
                on_item(result)

    report()
    connector = aiohttp.TCPConnector(limit=max(4, 2 * config.concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(max(1, config.concurrency))))
    report(final=True)


async def _evaluate(
    session: aiohttp.ClientSession, config: RunConfig, position: int, item: Item
) -> store.ItemResult:
    """Ask every turn of ``item``, then score the answers."""
    max_tokens = config.max_tokens or config.suite.max_tokens
    messages = list(item.messages)
    replies: list[Reply] = []
    error = None
    try:
        for followup in (None, *item.followups):
            if followup is not None:
                messages += [
                    {"role": "assistant", "content": replies[-1].text},
                    {"role": "user", "content": followup},
                ]
            replies.append(await config.endpoint.chat(session, config.model, messages, max_tokens))
    except EndpointError as exc:
        if not exc.permanent:
            raise
        error = str(exc)
    answers = [r.text for r in replies]
    judge_cost: int | None = None
    if error is not None:
        verdict = Verdict(1.0, None, "") if config.suite.rated else Verdict(0.0, False, "")
    else:
        verdict, judge_cost = await _score(session, config, item, answers)
    costs = [r.cost_nanos for r in replies]
    routes = sorted({r.route for r in replies if r.route})
    return store.ItemResult(
        item_id=item.id,
        position=position,
        answers=answers,
        expected=item.expected,
        score=verdict.score,
        passed=verdict.passed,
        detail=verdict.detail,
        error=error,
        latency_ms=sum(r.latency_ms for r in replies),
        prompt_tokens=sum(r.prompt_tokens for r in replies),
        completion_tokens=sum(r.completion_tokens for r in replies),
        route=",".join(routes) or None,
        cost_nanos=sum(c for c in costs if c is not None) if costs and None not in costs else None,
        judge_cost_nanos=judge_cost,
    )


async def _score(
    session: aiohttp.ClientSession, config: RunConfig, item: Item, answers: list[str]
) -> tuple[Verdict, int | None]:
    """The verdict on the answers, and what judging them cost (None: no judge, or unknown)."""
    if item.scorer == "humaneval":
        program = humaneval_program(answers[-1], **item.meta)
        result = await asyncio.to_thread(run_python, program, config.sandbox)
        if result.timed_out:
            detail = f"timed out after {config.sandbox.timeout_s:g}s"
        else:
            tail = result.output.strip().splitlines()
            detail = tail[-1][:200] if tail and not result.passed else ""
        return Verdict(1.0 if result.passed else 0.0, result.passed, detail), None
    if item.scorer in ("judge", "mt-bench"):
        return await _judge(session, config, item, answers)
    try:
        return SCORERS[item.scorer](answers[-1], item.expected), None
    except ValueError as exc:  # a malformed expected value: the item's fault, not the model's
        return Verdict(0.0, False, f"scorer error: {exc}"), None


async def _judge(
    session: aiohttp.ClientSession, config: RunConfig, item: Item, answers: list[str]
) -> tuple[Verdict, int | None]:
    """Rate each turn 1–10 with the judge model; the item's score is their mean."""
    assert config.judge_model is not None
    ratings: list[float] = []
    costs: list[int | None] = []
    for turn in range(1, len(answers) + 1):
        if item.scorer == "mt-bench":
            prompt = judge.mt_bench_prompt(
                item.meta["turns"][:turn], answers[:turn], item.meta.get("category"), item.expected
            )
        else:
            prompt = judge.generic_prompt(
                item.messages, answers[-1], item.expected, config.suite.rubric
            )
        reply = await config.endpoint.chat(session, config.judge_model, prompt, max_tokens=512)
        rating = judge.parse_rating(reply.text)
        if rating is None:
            raise EndpointError(
                f"the judge's reply has no 1-10 rating: {reply.text[-120:]!r}", permanent=False
            )
        ratings.append(rating)
        costs.append(reply.cost_nanos)
    cost = None if None in costs else sum(c for c in costs if c is not None)
    detail = "ratings " + ", ".join(f"{r:g}" for r in ratings)
    return Verdict(sum(ratings) / len(ratings), None, detail), cost


# -- HumanEval ------------------------------------------------------------------------------------

_TAGGED_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.I)
_CODE_START = re.compile(r"^\s*(?:def|class|import|from)\s", re.MULTILINE)


def extract_code(answer: str) -> str:
    """The code in an answer: a ```python block (an unclosed one runs to the end), else a plain
    fenced block, else everything. Code followed by a lone closing fence (small models often
    skip the opening one) is the code before that fence."""
    tagged = _TAGGED_BLOCK.search(answer)
    if tagged:
        return tagged.group(1)
    before, fence, after = answer.partition("```")
    if not fence:
        return answer
    if _CODE_START.search(before):
        return before
    return after.partition("\n")[2].partition("```")[0]


def humaneval_program(answer: str, *, prompt: str, test: str, entry_point: str) -> str:
    """The program that checks a HumanEval answer: the function, the tests, ``check(f)``.

    Chat models usually answer with the whole function; it is appended after the problem's own
    prompt (whose imports and helpers it may rely on), closed with ``pass``, so it replaces it.
    An answer that is only a body is appended to the prompt, as in the original harness.
    """
    code = extract_code(answer)
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        program = f"{prompt}    pass\n\n{code}"
    else:
        program = prompt + code
    return f"{program}\n\n{test}\n\ncheck({entry_point})\n"
