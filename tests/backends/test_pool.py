"""Many local models in one gateway: load on demand, budget, idle unload, `models add` live.

The engines here are a stand-in `llama-server`: it writes down its arguments and serves the fake
OpenAI-compatible upstream on the port it was given, so a real `thrifty serve` supervises real
processes without loading a model (the real engines: tests/e2e/test_local_models.py).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import THRIFTY, ThriftyServer
from thrifty.backends import reaper
from thrifty.backends.models import gguf_type

FAKES = Path(__file__).resolve().parent.parent / "fakes"


def stand_in_llama_server(tmp_path: Path) -> Path:
    exe = tmp_path / "bin" / "llama-server"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        f"with open({str(tmp_path / 'calls.jsonl')!r}, 'a') as f:\n"
        "    f.write(json.dumps({'pid': os.getpid(), 'args': args}) + '\\n')\n"
        "port = args[args.index('--port') + 1]\n"
        "name = args[args.index('--alias') + 1]\n"
        f"os.execv(sys.executable, [sys.executable, {str(FAKES / 'upstream.py')!r},\n"
        "          '--port', port, '--model-name', name])\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def tiny_gguf(path: Path, kind: str = "model") -> Path:
    """A GGUF header with general.type (the stand-in engine never reads the weights)."""
    key, value = b"general.type", kind.encode()
    path.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IQ", 8, len(value))
        + value
    )
    return path


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def states(server: ThriftyServer) -> dict[str, dict[str, Any]]:
    cards = httpx.get(server.base_url + "/models", timeout=10).json()["data"]
    return {c["id"]: c for c in cards}


def wait_for(check: Any, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def chat(server: ThriftyServer, model: str) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=30,
    )


def models_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "THRIFTY_HOME": str(home)}
    env.pop("THRIFTY_CONFIG", None)
    return subprocess.run(
        [*THRIFTY, "models", *args], env=env, capture_output=True, text=True, check=False
    )


def test_gguf_type_reads_the_header(tmp_path: Path) -> None:
    assert gguf_type(tiny_gguf(tmp_path / "a.gguf", "adapter")) == "adapter"
    assert gguf_type(tiny_gguf(tmp_path / "m.gguf")) == "model"
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x03")
    with pytest.raises(ValueError, match="cannot read"):
        gguf_type(tmp_path / "bad.gguf")


def test_many_models_in_one_gateway(tmp_path: Path) -> None:
    exe = stand_in_llama_server(tmp_path)
    home = tmp_path / "home"
    config = {
        "local": {
            "llama_server": str(exe),
            "max_loaded": 3,
            "idle_unload_s": 1,
            "models": {
                "alpha": str(tiny_gguf(tmp_path / "alpha.gguf")),
                "beta": {"path": str(tiny_gguf(tmp_path / "beta.gguf")), "pinned": True},
            },
        }
    }
    with ThriftyServer(config=config, home=home) as server:
        wait_for(lambda: states(server)["beta"]["state"] == "loaded", "the pinned model loads")
        cards = states(server)
        assert cards["smollm2-135m"]["state"] == "loaded"  # the default model
        assert cards["alpha"]["state"] == "unloaded"
        assert cards["gemma3-270m"]["state"] == "unloaded"  # bundled, not loaded until asked
        assert "chat" in cards["alpha"]["capabilities"]

        # load on demand; the wait is reported
        reply = chat(server, "alpha")
        assert reply.status_code == 200, reply.text
        assert int(reply.headers["x-thrifty-cold-start-ms"]) >= 0
        assert states(server)["alpha"]["state"] == "loaded"
        again = chat(server, "alpha")
        assert "x-thrifty-cold-start-ms" not in again.headers
        metrics = httpx.get(server.url + "/metrics").text
        assert 'thrifty_local_cold_start_seconds_count{model="alpha"} 1.0' in metrics

        # `models add` answers without a restart; a fourth engine pushes the idle one out (LRU)
        added = models_cli(home, "add", "gamma", str(tiny_gguf(tmp_path / "gamma.gguf")))
        assert added.returncode == 0, added.stderr
        wait_for(lambda: "gamma" in states(server), "models add reaches the gateway")
        assert chat(server, "gamma").status_code == 200
        cards = states(server)
        assert cards["gamma"]["state"] == "loaded"
        assert cards["alpha"]["state"] == "unloaded"  # least recently used, not pinned
        assert cards["beta"]["state"] == "loaded"  # pinned
        assert cards["smollm2-135m"]["state"] == "loaded"

        # idle unload; the next request (streamed, this time) loads it again
        wait_for(lambda: states(server)["gamma"]["state"] == "unloaded", "idle unload")
        assert states(server)["beta"]["state"] == "loaded"
        body = {"model": "gamma", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body) as streamed:
            assert streamed.status_code == 200
            assert int(streamed.headers["x-thrifty-cold-start-ms"]) >= 0
            assert "[DONE]" in streamed.read().decode()

        # an adapter is served on its base's engine, which restarts with it
        adapter = tiny_gguf(tmp_path / "student.gguf", "adapter")
        added = models_cli(home, "add", "student", str(adapter), "--adapter-of", "beta")
        assert added.returncode == 0, added.stderr
        wait_for(lambda: "student" in states(server), "the adapter is listed")
        assert states(server)["student"]["adapter_of"] == "beta"
        assert chat(server, "student").status_code == 200
        beta_runs = [c["args"] for c in calls(tmp_path) if "beta" in c["args"]]
        assert str(adapter) in beta_runs[-1] and "--lora-init-without-apply" in beta_runs[-1]
        assert states(server)["beta"]["state"] == "loaded"

        # `models remove` takes it away
        assert models_cli(home, "remove", "gamma").returncode == 0
        wait_for(lambda: "gamma" not in states(server), "models remove reaches the gateway")
        gone = chat(server, "gamma")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"

        # kill -9 of the gateway takes every engine with it
        engines = [int(p.read_text().split()[0]) for p in reaper.run_dir(home).glob("*.pid")]
        assert len(engines) == 2  # the default model and the pinned one
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        for pid in engines:
            wait_for(lambda pid=pid: not _running(pid), f"engine {pid} dies with its gateway")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by init) counts as gone
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
