"""Fine-tuning local students: LoRA, progressive unfreezing and logit distillation.

Everything under this package needs the `train` extra (torch, transformers, peft, gguf) and imports
it lazily; `require_extra()` turns its absence into a one-line install hint.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'thrifty[train]'"
_EXTRA_MODULES = ("torch", "transformers", "peft", "gguf")


class MissingTrainExtra(Exception):
    """The `train` extra is not installed; the message says how to install it."""


def require_extra() -> None:
    """Raise `MissingTrainExtra` naming the first missing module, without importing any of them."""
    for module in _EXTRA_MODULES:
        if importlib.util.find_spec(module) is None:
            raise MissingTrainExtra(f"fine-tuning needs {module} (the train extra): {INSTALL_HINT}")
