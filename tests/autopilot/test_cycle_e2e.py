"""End to end, on real models: the autopilot's whole cycle on a small task.

A real gateway serves the bundled SmolLM2-135M (llama-server) as `local` and a recording cloud
stand-in (the fake upstream, a real OpenAI-compatible server on 127.0.0.1) as `deepseek-chat`;
capture is on. The task: an order desk whose every answer is the standard acknowledgement, in
the customer's language (English or Chinese) — learnable by a tiny LoRA in a few steps, and far
from what the base model writes. `thrifty autopilot` runs as a child process, as the scheduler
runs it:

1. a cycle stopped by its CPU budget, killed in the middle of its fine-tune, run again: it goes
   on from there (nothing redone), trains, passes the gate, registers its candidate and waits
   for live traffic; new traffic arrives; the next run answers it twice, the two-sided test says
   the student is better, it is promoted (a rule for the task's `auto` traffic) and the scorer
   retrained; `status` shows every step;
2. a cycle whose fine-tune cannot learn (a vanishing learning rate) is stopped by the gate: the
   promoted student keeps serving and the rejected candidate leaves the registry;
3. roll back: the task's traffic goes back to the router's choice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from fakes.upstream import FakeUpstream
from support import THRIFTY, ThriftyServer
from thrifty.backends.models import registered
from thrifty.gateway.promoted import read_promotions
from thrifty.store.autopilot import read_journal
from thrifty.store.outcomes import task_key

pytestmark = pytest.mark.slow

SYSTEM = "Acme order desk: acknowledge every message, in the customer's language."
TASK = task_key(SYSTEM)
EN = "Logged. An agent replies within 24 hours."
ZH = "已登记，客服24小时内回复。"
EMAIL = "li.wei@example.com"
TRAINING = [
    "Where is my parcel 4471?", "I want to return the blue kettle.",
    "My invoice shows the wrong VAT.", "Can you change my delivery address?",
    "The blender arrived broken.", "Cancel order 9902 please.", "Do you ship to Norway?",
    "I was charged twice for one order.", "The lid of my pot is missing.",
    "How do I reset my account password?", "Please send a paper receipt.",
    "My coupon did not apply.",
    "我的包裹4471在哪里？", "我想退掉那个蓝色水壶。", "发票上的税额不对。", "能改一下收货地址吗？",
    "搅拌机到货时坏了。", "请取消订单9902。", "你们发货到挪威吗？", "一个订单被扣了两次钱。",
    "锅盖不见了。", "怎么重置账户密码？", "请寄一张纸质收据。", "优惠券没有生效。",
]  # fmt: skip
LIVE = [
    "The toaster has no plug.", "Is my refund processed yet?", "Wrong colour of sofa delivered.",
    "Can I pick up the order myself?", "烤面包机没有插头。", "我的退款处理了吗？",
    "送来的沙发颜色不对。", "我可以自己去取货吗？", "The mixer bowl is cracked.", "搅拌碗裂了。",
]  # fmt: skip
OTHER = "You translate English into French."


def _answer(question: str) -> str:
    return ZH if any("\u4e00" <= ch <= "\u9fff" for ch in question) else EN


def _config(fake: FakeUpstream, **autopilot: Any) -> dict[str, Any]:
    train = {"epochs": 4, "lr": 3e-3, "batch_size": 8, "max_len": 80, "threads": 2}
    train |= autopilot.pop("train", {})
    return {
        "local": {"model": "smollm2-135m"},
        "upstreams": [
            {"name": "deepseek", "base_url": fake.url, "models": {"deepseek-chat": "fake-chat"}}
        ],
        "cache": {"enabled": False},
        "privacy": {"on_pii": "mask"},
        "distill": {"capture_tenants": ["*"]},
        "store": {"flush_interval_s": 0.05},
        "autopilot": {
            "min_examples": 16,
            "holdout": 0.25,
            "metric": "similarity",
            "max_tokens": 24,
            "train": train,
            "gate": {"cloud_share": 0.5, "min_gain": 0.05, "regression_examples": 2},
            "shadow": {"min_requests": 8, "max_requests": 8},
            **autopilot,
        },
    }


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThriftyServer]:
    fake.set_answers({q: _answer(q) for q in [*TRAINING, *LIVE]} | {"*": EN})
    home = tmp_path_factory.mktemp("autopilot")
    with ThriftyServer(config=_config(fake), home=home) as gateway:
        yield gateway


def _ask(server: ThriftyServer, question: str, model: str, system: str = SYSTEM) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": 24,
        "temperature": 0,
    }
    reply = httpx.post(server.base_url + "/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply


def _traffic(server: ThriftyServer, questions: list[str], system: str = SYSTEM) -> None:
    ids = [
        _ask(server, q, "deepseek-chat", system).headers["x-thrifty-request-id"] for q in questions
    ]
    server.row(ids[-1])
    time.sleep(0.3)  # the samples writer flushes on the request log's beat


def _autopilot(server: ThriftyServer, *args: str) -> subprocess.Popen[str]:
    env = {**server.env, "THRIFTY_LOCAL__THREADS": "2"}
    return subprocess.Popen(
        [*THRIFTY, "autopilot", *args], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, cwd=server.home,
    )  # fmt: skip


def _cli(server: ThriftyServer, *args: str) -> str:
    proc = _autopilot(server, *args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def _set(server: ThriftyServer, fake: FakeUpstream, **autopilot: Any) -> None:
    (server.home / "thrifty.yaml").write_text(yaml.safe_dump(_config(fake, **autopilot)))


def _run(server: ThriftyServer) -> tuple[Any, dict[str, Any]]:
    run, steps = read_journal(server.database_url, TASK)[-1]
    return run, {s.step: s for s in steps}


@pytest.mark.timeout(900)
def test_one_full_cycle_on_real_models(server: ThriftyServer, fake: FakeUpstream) -> None:
    _traffic(server, [*TRAINING, f"Please mail the receipt to {EMAIL}."])
    _traffic(server, ["Good morning", "Thank you very much"], system=OTHER)  # another task
    url = server.base_url

    # a cycle stopped by its CPU budget, then killed while it trains
    out = _cli(server, "run", TASK, "--url", url, "--cpu-hours", "0.000001")  # 3.6 ms
    # after collect, or after dataset where collecting took under 3.6 ms (a coarse CPU clock)
    assert f"{TASK}: stopped [collect" in out and "CPU budget spent" in out, out
    assert "finetune" not in out.split("stopped [")[1].split("]")[0], out
    proc = _autopilot(server, "run", TASK, "--url", url)
    bases = server.home / "cache" / "bases"
    deadline = time.monotonic() + 400
    while proc.poll() is None and time.monotonic() < deadline:  # the base loaded, training
        if any(not p.name.startswith(".") for p in bases.glob("*")):
            break
        time.sleep(0.5)
    time.sleep(2)
    run, steps = _run(server)
    assert steps["finetune"].status == "running", proc.communicate()[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {name: (s.attempts, s.started) for name, s in steps.items() if s.status == "done"}
    assert set(before) == {"collect", "dataset"}

    # run again: it goes on from the fine-tune, passes the gate and waits for live traffic
    out = _cli(server, "run", TASK, "--url", url)
    assert f"{TASK}: waiting [finetune, export, gate, register, shadow]" in out, out
    run, steps = _run(server)
    for name, (attempts, started) in before.items():  # not redone
        assert (steps[name].attempts, steps[name].started) == (attempts, started)
    assert steps["finetune"].attempts == 2 and steps["finetune"].status == "done"
    gate = steps["gate"]
    assert gate.decision == "pass", gate.why
    assert gate.scores["candidate"] > gate.scores["current"] + 0.05
    assert gate.scores["current"] < 0.5 and gate.scores["regression"]["n"] == 2
    assert steps["shadow"].status == "waiting" and run.candidate == steps["export"].data["model"]
    student = run.candidate
    assert read_promotions(server.home) == []  # a candidate is not promoted yet
    assert "autopilot" not in _ask(server, "Where is parcel 8?", "auto").headers["x-thrifty-reason"]

    # no training row holds the e-mail address the customer wrote (masked before it left)
    assert steps["collect"].data["samples"] == 25 and steps["collect"].data["refused_pii"] == 0
    rows = Path(steps["dataset"].data["train_file"]).read_text()
    rows += Path(steps["dataset"].data["holdout_file"]).read_text()
    assert EMAIL not in rows and "<EMAIL_1>" in rows

    # new live traffic of the task: the candidate's test; then the decision
    _traffic(server, LIVE)
    out = _cli(server, "run", TASK, "--url", url)
    assert f"{TASK}: promoted [shadow, decide, retrain]" in out, out
    run, steps = _run(server)
    decide = steps["decide"]
    assert decide.decision == "promote" and decide.scores["p"] < 0.05
    assert steps["shadow"].scores["n"] == 8 and steps["shadow"].attempts == 2
    assert steps["retrain"].decision in ("retrained", "skipped")
    [promotion] = read_promotions(server.home)
    assert (promotion.task, promotion.model) == (TASK, student)
    time.sleep(1.2)  # the router looks at the rules file once a second
    routed = _ask(server, "My parcel is late.", "auto")
    assert routed.headers["x-thrifty-route"] == "local"
    assert routed.headers["x-thrifty-reason"].startswith(f"rule:autopilot:{TASK}")
    other = _ask(server, "Hello there", "auto", system=OTHER)
    assert "autopilot" not in other.headers["x-thrifty-reason"]
    explain = subprocess.run(
        [*THRIFTY, "route", "explain", "-s", SYSTEM, "My parcel is late."], env=server.env,
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"rule:autopilot:{TASK}" in explain
    status = _cli(server, "status", TASK)
    assert f"serving: {student}" in status
    for n, step in enumerate(["collect", "dataset", "finetune", "export", "gate", "register",
                              "shadow", "decide", "retrain"], start=1):  # fmt: skip
        assert f"{n}. {step:<9} done" in status, status
    assert "decision: promote — candidate" in status and '"p":' in status

    # a candidate that learned nothing: the gate stops the cycle; the student keeps serving
    _set(server, fake, train={"epochs": 1, "lr": 1e-9})
    out = _cli(server, "run", TASK, "--url", url, "--force")
    assert f"{TASK}: rejected" in out, out
    run, steps = _run(server)
    assert run.status == "rejected" and list(steps) == [
        "collect", "dataset", "finetune", "export", "gate"]  # fmt: skip
    gate = steps["gate"]
    assert gate.decision == "fail" and gate.data["current"] == student
    assert not gate.scores["checks"]["beats_current"]
    assert steps["export"].data["model"] not in registered(server.home)
    assert [p.model for p in read_promotions(server.home)] == [student]
    still = _ask(server, "My parcel is late.", "auto")
    assert still.headers["x-thrifty-reason"].startswith(f"rule:autopilot:{TASK}")

    # roll back: the task's traffic goes back to the router's choice
    out = _cli(server, "rollback", TASK)
    assert f"{student} taken off; now serving: local" in out
    assert read_promotions(server.home) == [] and student not in registered(server.home)
    time.sleep(1.2)
    back = _ask(server, "My parcel is late.", "auto")
    assert "autopilot" not in back.headers["x-thrifty-reason"]
    statuses = [r.status for r, _ in read_journal(server.database_url, TASK)]
    assert statuses == ["rolled_back", "rejected"]
    assert json.loads(_cli(server, "status", "--json"))["promotions"] == []
