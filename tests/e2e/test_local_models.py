"""Several real local models in one gateway: bundled ones, and students as LoRA adapters.

Two students are made here as LoRA adapters of the bundled SmolLM2 (PEFT, random non-zero
weights: they answer differently from each other without any training), exported with
`thrifty export --lora` (llama.cpp's own converter) and registered as adapters of smollm2-135m.
One gateway then serves SmolLM2, Gemma 3 and both students, with one engine for SmolLM2 and its
adapters; an A/B experiment between two local models and per-model cost are checked on it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import THRIFTY, ThriftyServer
from thrifty.backends import reaper

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "Name a color."}]


def _lora_runs(base_gguf: Path, outs: list[Path]) -> None:
    """`thrifty finetune`-shaped LoRA runs (manifest + PEFT adapter) with random weights."""
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model

    from thrifty.train.base import load_base

    model, _ = load_base(str(base_gguf), outs[0])
    config = LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    for seed, out in enumerate(outs):
        torch.manual_seed(seed)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_" in name:
                    param.normal_(0, 0.05)
        with warnings.catch_warnings():  # "no config file beside the GGUF": nothing to compare
            warnings.simplefilter("ignore", UserWarning)
            peft_model.save_pretrained(out / "adapter")
        manifest = {"format": "adapter", "base": "smollm2-135m", "base_path": str(base_gguf)}
        (out / "thrifty-train.json").write_text(json.dumps(manifest))


def _cli(home: Path, *args: str) -> str:
    env = {**os.environ, "THRIFTY_HOME": str(home)}
    env.pop("THRIFTY_CONFIG", None)
    done = subprocess.run([*THRIFTY, *args], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with two students registered as adapters of smollm2-135m."""
    from thrifty.backends.models import resolve_model

    home = tmp_path_factory.mktemp("home")
    runs = {name: tmp_path_factory.mktemp(name) for name in ("student-a", "student-b")}
    _lora_runs(resolve_model("smollm2-135m", home), list(runs.values()))
    for name, run in runs.items():
        _cli(home, "export", str(run), "--lora", "--name", name)
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ThriftyServer]:
    config = {
        "local": {"parallel": 1, "ctx_size": 512, "max_loaded": 2},
        "experiments": {
            "local-ab": {
                "variants": {
                    "control": {"model": "smollm2-135m", "weight": 0.5},
                    "student": {"model": "student-a", "weight": 0.5},
                }
            }
        },
    }
    with ThriftyServer(config=config, home=home) as gateway:
        yield gateway


def _ask(server: ThriftyServer, model: str, user: str = "u") -> httpx.Response:
    body = {"model": model, "messages": PROMPT, "max_tokens": 8, "temperature": 0, "user": user}
    return httpx.post(server.base_url + "/chat/completions", json=body, timeout=120)


def _engines(home: Path) -> dict[int, str]:
    out = {}
    for path in reaper.run_dir(home).glob("engine-*.pid"):
        pid = int(path.read_text().split()[0])
        out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    return out


def test_bundled_models_and_adapter_students_in_one_gateway(
    server: ThriftyServer, home: Path
) -> None:
    answers = {}
    for model in ("smollm2-135m", "gemma3-270m", "student-a", "student-b"):
        reply = _ask(server, model)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-thrifty-route"] == "local"
        answers[model] = reply.json()["choices"][0]["message"]["content"]
    assert answers["student-a"] != answers["student-b"]
    cards = {c["id"]: c for c in httpx.get(server.base_url + "/models").json()["data"]}
    assert cards["student-a"]["adapter_of"] == "smollm2-135m"
    assert {cards[m]["state"] for m in ("smollm2-135m", "gemma3-270m", "student-b")} == {"loaded"}
    engines = _engines(home)
    assert len(engines) == 2  # SmolLM2 once, with both adapters on it; and Gemma
    (smollm2,) = [cmd for cmd in engines.values() if "\0--alias\0smollm2-135m\0" in cmd]
    assert smollm2.count("\0--lora\0") == 2


def test_ab_between_two_local_models_and_cost_per_model(server: ThriftyServer, home: Path) -> None:
    for i in range(8):
        assert _ask(server, "local-ab", user=f"user-{i}").status_code == 200
    server.wait_rows("variant = ?", ("local-ab:student",))
    report = json.loads(_cli(home, "ab", "report", "local-ab", "--format", "json"))
    variants = {v["variant"]: v for v in report["variants"]}
    assert variants["control"]["requests"] + variants["student"]["requests"] == 8
    assert variants["control"]["requests"] > 0 and variants["student"]["requests"] > 0
    assert variants["student"]["model"] == "student-a"
    # each local model is charged for its own engine's busy time
    usage = json.loads(_cli(home, "usage", "--by", "model", "--format", "json"))
    rows = {row["key"]: row for row in usage["rows"]}
    for model in ("smollm2-135m", "gemma3-270m", "student-a", "student-b"):
        assert rows[model]["cost_nanos"] > 0, rows[model]


def test_kill_9_leaves_no_engine(server: ThriftyServer, home: Path) -> None:
    engines = _engines(home)
    assert engines
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    for pid in engines:
        with pytest.raises(ProcessLookupError):
            _wait_gone(pid)


def _wait_gone(pid: int) -> None:
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        os.kill(pid, 0)  # raises once it is gone
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            raise ProcessLookupError  # dead, waiting for init to reap it
        time.sleep(0.1)
