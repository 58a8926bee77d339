"""The vLLM engine: its command line, the GPU check, and thrifty's supervision of it.

vLLM itself needs a GPU, which this machine has not. What thrifty adds around it (the command,
admission, health, restart with backoff) is tested with a stand-in `vllm` program: it writes
down the arguments it got and serves the fake OpenAI-compatible upstream on the given port.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import openai
import pytest

from support import ThriftyServer
from thrifty.backends import local_engine
from thrifty.backends.engine import EngineUnavailable
from thrifty.config import Settings

FAKES = Path(__file__).resolve().parent.parent / "fakes"


def stand_in_vllm(tmp_path: Path) -> Path:
    """An executable named vllm: `vllm serve MODEL --port P ...` runs the fake upstream on P."""
    exe = tmp_path / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        f"with open({str(tmp_path / 'calls.jsonl')!r}, 'a') as f:\n"
        "    f.write(json.dumps({'pid': os.getpid(), 'args': args}) + '\\n')\n"
        "port = args[args.index('--port') + 1]\n"
        "name = args[args.index('--served-model-name') + 1]\n"
        f"os.execv(sys.executable, [sys.executable, {str(FAKES / 'upstream.py')!r},\n"
        "          '--port', port, '--model-name', name])\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def calls(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_command_line(tmp_path: Path) -> None:
    hf_dir = tmp_path / "student"
    hf_dir.mkdir()
    settings = Settings(
        home=tmp_path,
        local={
            "engine": "vllm",
            "model": str(hf_dir),
            "parallel": 8,
            "ctx_size": 2048,
            "vllm": {"executable": "/bin/true", "require_gpu": False, "dtype": "bfloat16"},
            "extra_args": ["--enforce-eager"],
        },
    )
    engine = local_engine(settings)
    engine.port = 9000
    command = engine.command(engine.locate())
    assert command[:3] == ["/bin/true", "serve", str(hf_dir)]
    joined = " ".join(command)
    assert "--host 127.0.0.1 --port 9000" in joined and "--served-model-name student" in joined
    assert "--max-num-seqs 8" in joined and "--max-model-len 2048" in joined
    assert "--dtype bfloat16" in joined and command[-1] == "--enforce-eager"


def test_no_gpu_is_a_clear_error_not_a_crash_loop(tmp_path: Path) -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA GPU: the refusal cannot be shown here")
    settings = Settings(home=tmp_path, local={"engine": "vllm", "model": str(tmp_path)})
    engine = local_engine(settings)
    with pytest.raises(EngineUnavailable, match="no NVIDIA GPU"):
        engine.command(engine.locate())


@pytest.mark.slow
def test_thrifty_supervises_vllm_and_restarts_it(tmp_path: Path) -> None:
    exe = stand_in_vllm(tmp_path)
    config = {
        "local": {
            "engine": "vllm",
            "model": str(tmp_path),
            "vllm": {"executable": str(exe), "require_gpu": False},
        }
    }
    with ThriftyServer(config=config) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=30)

        def ask(text: str) -> str:
            reply = client.chat.completions.create(
                model="local", messages=[{"role": "user", "content": f"echo:{text}"}]
            )
            return reply.choices[0].message.content or ""

        assert ask("first") == "first"
        [first] = calls(tmp_path)
        args = first["args"]
        assert isinstance(args, list) and args[:2] == ["serve", str(tmp_path)]

        os.kill(int(str(first["pid"])), signal.SIGKILL)  # the engine dies under the gateway
        deadline = time.monotonic() + 30
        while len(calls(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(calls(tmp_path)) == 2, "thrifty must restart a dead engine"
        while time.monotonic() < deadline:
            try:
                assert ask("again") == "again"
                break
            except openai.APIStatusError as exc:  # 503 until the new engine is healthy
                assert exc.status_code == 503
                time.sleep(0.2)
        else:
            pytest.fail(f"engine not back within 30 s:\n{server.log()}")
