"""`thrifty distill collect`: filters, dedupe, a seeded holdout, and reading the capture table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from support import database_url
from thrifty.cli import main
from thrifty.store.samples import Sample, SampleLog, read_samples
from thrifty.train.collect import (
    Example,
    Filters,
    Summary,
    finish,
    holdout_path,
    prompt_key,
    read_prompts,
    select,
    split,
)


def _example(prompt: str, answer: str, system: str | None = None) -> Example:
    messages = [{"role": "system", "content": system}] if system else []
    return Example(
        [*messages, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    )


def test_prompts_differing_in_case_width_and_spacing_are_one() -> None:
    a = [{"role": "user", "content": "Where is  my ORDER?"}]
    b = [{"role": "user", "content": " where is my order？ "}]  # full-width question mark
    c = [{"role": "user", "content": "where is my order?"}]
    assert prompt_key(a) == prompt_key(c)
    assert prompt_key(b) == prompt_key(c)  # NFKC folds the full-width mark
    assert prompt_key([{"role": "system", "content": "x"}, *c]) != prompt_key(c)


def test_select_filters_and_dedupes_keeping_the_first() -> None:
    summary = Summary()
    kept = select(
        [
            _example("Where is my order?", "order_status"),
            _example("where is my order?", "refund"),  # a duplicate prompt
            _example("我的订单到哪了？", "order_status"),
            _example("empty", "   "),
            _example("short", "ok"),
            _example("long " * 100, "order_status"),
        ],
        Filters(min_chars=3, max_chars=200),
        summary,
    )
    assert [e.answer for e in kept] == ["order_status", "order_status"]
    assert kept[1].prompt[-1]["content"] == "我的订单到哪了？"
    assert summary.read == 6
    assert summary.dropped == {
        "duplicate prompt": 1,
        "empty answer": 1,
        "answer under 3 chars": 1,
        "over 200 chars": 1,
    }


def test_holdout_is_deterministic_for_a_seed_and_keeps_order() -> None:
    examples = [_example(f"question {i}", f"answer {i}") for i in range(50)]
    train, held = split(examples, 0.2, seed=7)
    again_train, again_held = split(examples, 0.2, seed=7)
    assert (train, held) == (again_train, again_held)
    assert len(held) == 10 and len(train) == 40
    assert not {e.answer for e in train} & {e.answer for e in held}
    assert [e.answer for e in held] == sorted(
        (e.answer for e in held), key=lambda a: int(a.split()[1])
    )
    assert split(examples, 0.2, seed=8)[1] != held
    assert split(examples, 0.0, seed=7) == (list(examples), [])


def test_finish_writes_train_and_holdout_files(tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    examples = [_example(f"问题 {i}", f"回答 {i}", system="客服") for i in range(20)]
    summary = finish(examples, out, filters=Filters(), holdout=0.25, seed=1)
    assert holdout_path(out) == tmp_path / "data.holdout.jsonl"
    train = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    held = [json.loads(line) for line in holdout_path(out).read_text(encoding="utf-8").splitlines()]
    assert (len(train), len(held)) == (15, 5) == (summary.train, summary.holdout)
    assert set(train[0]) == {"messages"}
    assert [m["role"] for m in train[0]["messages"]] == ["system", "user", "assistant"]
    assert "问题" in out.read_text(encoding="utf-8")  # not \u-escaped


def test_read_prompts_accepts_three_shapes(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt": "Is the air fryer in stock?"},
        {
            "messages": [
                {"role": "user", "content": "发票怎么开？"},
                {"role": "assistant", "content": "old"},
            ]
        },
        "Cancel my order",
        {"messages": [{"role": "system", "content": "only a system turn"}]},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\nnot json\n")
    summary = Summary()
    prompts = read_prompts(path, "Answer with a label.", summary)
    assert [p[-1]["content"] for p in prompts] == [
        "Is the air fryer in stock?",
        "发票怎么开？",
        "Cancel my order",
    ]
    assert all(p[0] == {"role": "system", "content": "Answer with a label."} for p in prompts)
    assert summary.dropped == {"no user prompt": 1, "unreadable line": 1}


def _captured(url: str, samples: list[Sample]) -> None:
    log = SampleLog(url, flush_interval_s=0.01)
    log.open()
    try:
        for sample in samples:
            log.append(sample)
        assert log.flush()
    finally:
        log.close()


def _sample(n: int, route: str = "deepseek-chat", tenant: str = "acme", **kw: object) -> Sample:
    fields: dict[str, object] = {
        "id": f"req-{n}",
        "ts": time.time() - n * 3600,
        "tenant": tenant,
        "route": route,
        "upstream_model": route,
        "messages": [{"role": "user", "content": f"question {n}"}],
        "answer": f"answer {n}",
    }
    fields.update(kw)
    return Sample(**fields)  # type: ignore[arg-type]


def test_read_samples_filters_and_never_returns_unmasked_pii(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    assert list(read_samples(url)) == []  # no database yet: nothing, and nothing created
    assert not (tmp_path / "thrifty.db").exists()
    _captured(
        url,
        [
            _sample(1),
            _sample(2, route="gpt-4o"),
            _sample(3, tenant="other"),
            _sample(4, pii=frozenset({"phone"}), masked=True),
            _sample(5, pii=frozenset({"phone"}), masked=False),  # written some other way
            _sample(24 * 40, answer="too old"),
        ],
    )
    ids = [s.id for s in read_samples(url)]
    assert "req-5" not in ids and len(ids) == 5
    since = time.time() - 10 * 86400
    assert [
        s.id for s in read_samples(url, since=since, routes=["deepseek-chat"], tenants=["acme"])
    ] == [
        "req-4",
        "req-1",
    ]


def test_collect_from_log_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = database_url(home)
    _captured(
        url,
        [_sample(n) for n in range(1, 21)]
        + [_sample(99, messages=[{"role": "user", "content": "QUESTION 1"}])],
    )
    out = tmp_path / "out" / "data.jsonl"
    args = ["distill", "collect", "--from-log", "--route", "deepseek-chat", "--since", "30d"]
    args += ["--out", str(out), "--holdout", "0.1", "--seed", "3"]
    result = CliRunner().invoke(main, args, env={"THRIFTY_HOME": str(home), "THRIFTY_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert "read 21, kept 20 (train 18, holdout 2)" in result.output
    assert "dropped 1: duplicate prompt" in result.output
    held = (tmp_path / "out" / "data.holdout.jsonl").read_text().splitlines()
    again = CliRunner().invoke(main, args, env={"THRIFTY_HOME": str(home), "THRIFTY_CONFIG": ""})
    assert again.exit_code == 0
    assert (tmp_path / "out" / "data.holdout.jsonl").read_text().splitlines() == held


def test_collect_from_an_empty_log_says_how_to_turn_capture_on(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["distill", "collect", "--from-log", "--out", str(tmp_path / "d.jsonl")],
        env={"THRIFTY_HOME": str(tmp_path), "THRIFTY_CONFIG": ""},
    )
    assert result.exit_code == 1
    assert "capture_tenants" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--out", "x.jsonl"],
        ["--from-log", "--from-prompts", "{prompts}", "--out", "x.jsonl"],
        ["--from-prompts", "{prompts}", "--out", "x.jsonl"],  # no --teacher
    ],
)
def test_collect_usage_errors(tmp_path: Path, args: list[str]) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi"}\n')
    args = [a.replace("{prompts}", str(prompts)) for a in args]
    result = CliRunner().invoke(
        main, ["distill", "collect", *args], env={"THRIFTY_HOME": str(tmp_path)}
    )
    assert result.exit_code == 2, result.output
