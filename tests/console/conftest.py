"""One gateway for the console's tests (fake engines instead of models), keys of two tenants,
and a known set of requests: local, cloud, a cache hit, personal data, a cascade escalation,
flagged text for the review queue; plus a stored `route eval` sweep and shadow outcomes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from console.known import SWEEP, Gateway, ask, config
from fakes.upstream import FakeUpstream, start_upstream
from support import ThriftyServer
from thrifty.evals import store as eval_store
from thrifty.store.autopilot import Journal
from thrifty.store.autopilot import Run as AutopilotRun
from thrifty.store.autopilot import Step as AutopilotStep
from thrifty.store.console import save_route_eval
from thrifty.store.db import connect
from thrifty.store.keys import KeySpec, KeyStore
from thrifty.store.migrations import migrate
from thrifty.store.outcomes import Outcome, add_outcomes


@pytest.fixture(scope="package")
def fake_local() -> Iterator[FakeUpstream]:
    """The local engine (`local.url`), as a llama-server sidecar would be attached."""
    with start_upstream(model_name="local-fake") as upstream:
        yield upstream


@pytest.fixture(scope="package")
def fake_cloud() -> Iterator[FakeUpstream]:
    with start_upstream(model_name="cloud-fake") as upstream:
        yield upstream


@pytest.fixture(scope="package")
def gateway(
    fake_local: FakeUpstream, fake_cloud: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    words = tmp_path_factory.mktemp("lists") / "watch.txt"
    words.write_text("# action: flag\nsecret plan\n", encoding="utf-8")
    server = ThriftyServer(config=config(fake_local, fake_cloud, words))
    server.home.mkdir(parents=True, exist_ok=True)
    secrets = {}
    with KeyStore(server.database_url) as store:
        for name, tenant, role in (
            ("admin", "acme", "admin"),
            ("acme", "acme", "user"),
            ("beta", "beta", "user"),
            ("viewer", "beta", "viewer"),
        ):
            spec = KeySpec(tenant, role=role, daily_tokens=50000 if name == "beta" else None)  # type: ignore[arg-type]
            secrets[name] = store.create(spec, "cli:test")[1]
    with connect(server.database_url) as conn:
        migrate(conn)
        save_route_eval(conn, "local", "deepseek-chat", SWEEP)
        add_outcomes(
            conn,
            [
                Outcome("shadow", "local", "f1", True, score=0.9, ref="s1", tenant="acme"),
                Outcome("shadow", "local", "f2", False, score=0.2, ref="s2", tenant="acme"),
                Outcome(
                    "shadow", "deepseek-chat", "f1", True, cost_nanos=1200, ref="s1", tenant="acme"
                ),
            ],
        )
    _eval_run(server)
    _autopilot_runs(server)
    with server:
        acme, beta = secrets["acme"], secrets["beta"]
        for n in range(4):
            ask(server, "chat-ab", f"echo:which variant {n}", acme)
        ask(server, "local", "echo:acme asks", acme)
        ask(server, "deepseek-chat", "echo:acme asks the cloud", acme)
        ask(server, "deepseek-chat", "echo:acme asks the cloud", acme)  # a cache hit
        ask(server, "auto", "I want my money back", acme, **{"x-check": "labels"})  # escalates
        ask(server, "local", "echo:beta asks", beta)
        ask(server, "local", "echo:mail me at alice.liddell@example.com", beta)  # personal data
        ask(server, "local", "echo:about the secret plan", acme)  # flagged: queued for review
        ask(server, "local", "echo:the secret plan again", beta)
        while len(server.rows()) < 12:
            server.wait_rows("1=0", timeout=0.2)
        yield Gateway(server, secrets)


def _eval_run(server: ThriftyServer) -> None:
    """A stored `thrifty eval` run: 7 of 10 items correct."""
    conn = eval_store.connect(server.home / "evals.db")
    try:
        eval_store.start_run(
            conn,
            "faq-local",
            suite="faq",
            source="faq.jsonl",
            model="local",
            base_url=server.base_url,
            rated=False,
            planned=10,
            params={},
        )
        for n in range(10):
            result = eval_store.ItemResult(
                f"q{n}",
                n,
                ["answer"],
                "answer",
                float(n < 7),
                n < 7,
                "",
                None,
                12.5,
                9,
                3,
                "local",
                1000,
                None,
            )
            eval_store.save_item(conn, "faq-local", result)
        eval_store.finish_run(conn, "faq-local", "done")
    finally:
        conn.close()


def _autopilot_runs(server: ThriftyServer) -> None:
    """Two autopilot cycles: one over beta's traffic (promoted), one over every tenant's."""
    with connect(server.database_url) as conn:
        migrate(conn)
        journal = Journal(conn)
        for run_id, tenant, status in (
            ("ap-beta", "beta", "promoted"),
            ("ap-all", None, "waiting"),
        ):
            journal.add_run(
                AutopilotRun(
                    run_id,
                    "task1",
                    tenant,
                    "You sort tickets.",
                    status,
                    candidate=f"student-{run_id}",
                    decision="promote" if tenant else "",
                    why="Welch p=0.01: at least as good" if tenant else "",
                    cpu_s=412.0,
                    usd_nanos=35_000_000,
                )
            )
            for seq, step in enumerate(("collect", "finetune", "gate")):
                journal.start_step(run_id, step, seq)
                journal.finish_step(
                    AutopilotStep(
                        run_id,
                        step,
                        seq,
                        "done",
                        scores={"accuracy": 0.91},
                        decision="go",
                        why=f"{step} passed",
                    )
                )
