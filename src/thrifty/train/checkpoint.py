"""Checkpoints under DIR/checkpoints/step-NNNNNN/, enough to resume exactly where a run stopped.

Each holds the weights that can have changed (the LoRA matrices, or the whole model for full
fine-tuning), the optimizer's moments, the RNG state (dropout) and the step and loss history. The
data order is a pure function of (seed, epoch), so the step count alone says which batch is next.
A checkpoint is written under a temporary name and renamed, so a crash mid-write never leaves a
half checkpoint that --resume would pick; only the newest KEEP are kept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CHECKPOINTS = "checkpoints"
KEEP = 2


@dataclass
class Progress:
    """Where a run is: optimizer steps and micro-batches done, the stage, each step's loss, and
    the seconds spent so far (by every invocation, when resumed)."""

    step: int = 0
    micro: int = 0
    stage: int = 0
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def save(
    out: Path,
    progress: Progress,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    args: dict[str, Any],
) -> Path:
    """Write the checkpoint for `progress.step`; drop all but the newest KEEP."""
    import torch

    root = out / CHECKPOINTS
    final = root / f"step-{progress.step:06d}"
    partial = root / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    torch.save(
        {
            "weights": _changing_weights(model),
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
        },
        partial / "checkpoint.pt",
    )
    state = {"progress": asdict(progress), "args": args}
    (partial / "state.json").write_text(json.dumps(state), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in _finished(out)[:-KEEP]:
        shutil.rmtree(old)
    return final


def _changing_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """LoRA: only the adapter's tensors (the base never changes); otherwise everything."""
    state = model.state_dict()
    lora = {name: t for name, t in state.items() if "lora_" in name}
    return lora or state


def _finished(out: Path) -> list[Path]:
    root = out / CHECKPOINTS
    return sorted(root.glob("step-*")) if root.is_dir() else []


def latest(out: Path) -> Path | None:
    """The newest complete checkpoint of a run, if any."""
    done = _finished(out)
    return done[-1] if done else None


def load_state(checkpoint: Path) -> tuple[Progress, dict[str, Any]]:
    """The progress and the run's arguments stored in a checkpoint."""
    state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    return Progress(**state["progress"]), state["args"]


def load_tensors(checkpoint: Path, model: torch.nn.Module) -> dict[str, Any]:
    """Put the checkpoint's weights and RNG state back; return the optimizer's state dict."""
    import torch

    saved = torch.load(checkpoint / "checkpoint.pt", map_location="cpu", weights_only=True)
    result = model.load_state_dict(saved["weights"], strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{checkpoint}: weights of another model: {result.unexpected_keys[:3]}")
    torch.set_rng_state(saved["rng"])
    optimizer_state: dict[str, Any] = saved["optimizer"]
    return optimizer_state
