"""Stages of training: which parameters learn, for how many steps, at which learning rate.

LoRA and distillation run one stage. Progressive fine-tuning runs three, so that the early,
general layers are disturbed last and least (the small-data recipe of ULMFiT's gradual unfreezing):

1. only the last 2 transformer blocks learn (~90-95% of the parameters frozen), at --lr;
2. the top blocks holding ~50% of the parameters learn, the LR decaying linearly from
   --stage2-lr to a tenth of it;
3. everything learns at --stage3-lr, with gradient accumulation (bigger effective batches for
   the noisiest stage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

STAGE2_SHARE = 0.5  # the share of all parameters that stage 2 trains


@dataclass(frozen=True, slots=True)
class Stage:
    """`steps` optimizer steps, each over `grad_accum` micro-batches; `unfreeze` sets
    requires_grad on the model for this stage; `lr(i)` is the LR of the stage's i-th step."""

    name: str
    steps: int
    grad_accum: int
    unfreeze: Callable[[torch.nn.Module], None]
    lr: Callable[[int], float]


def single_stage(steps: int, lr: float, grad_accum: int) -> Stage:
    """LoRA and KD: the parameters trainable as prepared, at a constant LR."""
    return Stage("train", steps, grad_accum, lambda model: None, lambda i: lr)


def progressive_stages(
    steps: tuple[int, int, int],
    lr: float,
    stage2_lr: float,
    stage3_lr: float,
    grad_accum: int,
    stage3_accum: int,
) -> list[Stage]:
    """The three stages of progressive unfreezing, with the step counts given."""
    decay = max(steps[1] - 1, 1)
    return [
        Stage("1-last-2-blocks", steps[0], grad_accum, lambda m: _unfreeze_top(m, 2), lambda i: lr),
        Stage(
            "2-top-half",
            steps[1],
            grad_accum,
            _unfreeze_top_share,
            lambda i: stage2_lr * (1 - 0.9 * min(i, decay) / decay),
        ),
        Stage("3-full", steps[2], stage3_accum, _unfreeze_all, lambda i: stage3_lr),
    ]


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks, bottom to top: the longest ModuleList in the model."""
    import torch

    lists = [list(m) for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError("the model has no list of transformer blocks to unfreeze")
    return max(lists, key=len)


def _freeze_all(model: torch.nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad_(False)


def _unfreeze_top(model: torch.nn.Module, count: int) -> None:
    _freeze_all(model)
    for block in blocks(model)[-count:]:
        block.requires_grad_(True)


def _unfreeze_top_share(model: torch.nn.Module) -> None:
    """Unfreeze blocks from the top until they hold STAGE2_SHARE of all parameters."""
    _freeze_all(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = 0
    for block in reversed(blocks(model)):
        if trainable >= STAGE2_SHARE * total:
            break
        block.requires_grad_(True)
        trainable += sum(p.numel() for p in block.parameters())


def _unfreeze_all(model: torch.nn.Module) -> None:
    model.requires_grad_(True)


def trainable_share(model: torch.nn.Module) -> float:
    """The share of parameters that currently learn (tied weights counted once)."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    return sum(p.numel() for p in params if p.requires_grad) / max(total, 1)
