"""`thrifty doctor` on a healthy setup (exit 0) and a broken one (exit 1, a fix per problem),
against real servers: the fake cloud upstream, a real Redis, a port really taken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fakes.upstream import FakeUpstream
from support import THRIFTY, free_port

SECRET = "sk-doctor-never-print-me"


def doctor(home: Path, config: dict[str, Any], env: dict[str, str]) -> tuple[int, str, list[Any]]:
    """Run `thrifty doctor` twice (table, then JSON): exit status, the table, the checks."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "thrifty.yaml"
    path.write_text(yaml.safe_dump(config))
    full = {**os.environ, "THRIFTY_HOME": str(home), "THRIFTY_CONFIG": str(path), **env}
    for name in ("DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL"):
        if name not in env:
            full.pop(name, None)
    table = subprocess.run(
        [*THRIFTY, "doctor"], env=full, capture_output=True, text=True, timeout=120
    )
    as_json = subprocess.run(
        [*THRIFTY, "doctor", "--format", "json"], env=full, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert table.returncode == as_json.returncode, table.stdout + table.stderr
    assert SECRET not in table.stdout + table.stderr + as_json.stdout
    return table.returncode, table.stdout, json.loads(as_json.stdout)


def by_name(checks: list[Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in checks}


def test_a_healthy_setup_exits_0(tmp_path: Path, fake: FakeUpstream, redis_url: str) -> None:
    config = {
        "port": free_port(),
        "cache": {"redis_url": redis_url},
        "upstreams": [
            {"name": "cloud", "base_url": fake.url, "api_key_env": "DOCTOR_KEY",
             "models": {"deepseek-chat": "deepseek-chat"}},
        ],
    }  # fmt: skip
    status, table, checks = doctor(tmp_path / "home", config, {"DOCTOR_KEY": SECRET})
    assert status == 0, table
    checks_by = by_name(checks)
    for name in ("engine", "model", "cores", "port", "database", "auth", "redis", "upstream cloud"):
        assert checks_by[name]["status"] == "ok", (name, table)
    assert "key in $DOCTOR_KEY: set" in checks_by["upstream cloud"]["detail"]
    assert not [c for c in checks if c["status"] == "fail"]
    assert table.strip().splitlines()[-1].startswith("ready: nothing broken")


def test_a_broken_setup_exits_1_with_a_fix_for_each_problem(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here
    broken = tmp_path / "llama-server"  # a build that does not run
    broken.write_text("#!/bin/sh\nexit 127\n")
    broken.chmod(0o755)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        config = {
            "port": taken,
            "local": {"llama_server": str(broken), "model": "nope"},
            "cache": {"redis_url": f"redis://:{SECRET}@127.0.0.1:{closed}/0"},
            "upstreams": [
                {"name": "cloud", "base_url": f"http://127.0.0.1:{closed}/v1",
                 "api_key_env": "DOCTOR_MISSING_KEY", "models": {"deepseek-chat": "x"}},
            ],
        }  # fmt: skip
        status, table, checks = doctor(tmp_path / "home", config, {})
    assert status == 1
    failed = {c["name"]: c for c in checks if c["status"] == "fail"}
    assert set(failed) >= {"engine", "model", "port", "redis", "upstream cloud"}, table
    assert all(c["fix"] for c in failed.values())  # a fix for every problem
    assert "does not run" in failed["engine"]["detail"] and "make engine" in failed["engine"]["fix"]
    assert f"pid {os.getpid()}" in failed["port"]["detail"]
    assert f"--port {taken + 1}" in failed["port"]["fix"]
    assert "redis-server" in failed["redis"]["fix"]
    assert "***" not in failed["redis"]["detail"] and SECRET not in failed["redis"]["detail"]
    upstream = [c for c in checks if c["name"] == "upstream cloud"]
    assert any("$DOCTOR_MISSING_KEY is not set" in c["detail"] for c in upstream)
    assert any("unreachable" in c["detail"] for c in upstream)
    assert "FAIL  engine" in table and "make engine" in table


def test_a_public_address_without_keys_is_a_problem(tmp_path: Path) -> None:
    config = {"host": "0.0.0.0", "port": free_port(), "local": {"enabled": False}}
    status, table, checks = doctor(tmp_path / "home", config, {})
    assert status == 1
    auth = by_name(checks)["auth"]
    assert auth["status"] == "fail" and "thrifty keys create" in auth["fix"], table


@pytest.mark.parametrize("mode", ["required"])
def test_required_mode_may_listen_publicly(tmp_path: Path, mode: str) -> None:
    config = {"host": "0.0.0.0", "port": free_port(), "local": {"enabled": False},
              "auth": {"mode": mode}}  # fmt: skip
    status, table, checks = doctor(tmp_path / "home", config, {})
    assert status == 0, table
    assert by_name(checks)["auth"]["status"] == "ok"
