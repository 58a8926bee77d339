"""Losses on answer tokens only, as pure functions of logits and labels.

Labels follow Hugging Face's convention: `labels` is aligned with `input_ids` (IGNORE on prompt and
padding), and the logits at position t predict the label at t + 1; the shift happens here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.train.data import IGNORE

if TYPE_CHECKING:
    import torch

KD_ALPHA = 0.7
KD_TEMPERATURE = 2.0


@dataclass(frozen=True, slots=True)
class KDLoss:
    """The distillation loss and its two parts (scalars; `total` carries the gradient)."""

    total: torch.Tensor
    kl: torch.Tensor
    ce: torch.Tensor


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = KD_ALPHA,
    temperature: float = KD_TEMPERATURE,
) -> KDLoss:
    """α·T²·KL(teacher_T ‖ student_T) + (1−α)·CE, each averaged over the answer tokens.

    Logits are (batch, seq, vocab), labels (batch, seq). The T² keeps the KL gradients on the
    scale of the CE's as T grows (Hinton et al., 2015). The KL sums over the vocabulary per token.
    """
    import torch.nn.functional as F

    student, teacher, target = _answer_positions(student_logits, teacher_logits, labels)
    log_p_student = F.log_softmax(student / temperature, dim=-1)  # (tokens, vocab)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()
    ce = F.cross_entropy(student, target)
    return KDLoss(alpha * temperature**2 * kl + (1 - alpha) * ce, kl, ce)


def _answer_positions(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (tokens, vocab) logits that predict an answer token, and those tokens' ids."""
    target = labels[:, 1:]
    keep = target != IGNORE  # (batch, seq-1)
    return student_logits[:, :-1][keep], teacher_logits[:, :-1][keep], target[keep]


def answer_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the answer tokens, and their count (for token-weighted means
    across batches of different sizes)."""
    import torch.nn.functional as F

    target = labels[:, 1:]
    keep = target != IGNORE
    total = F.cross_entropy(logits[:, :-1][keep], target[keep], reduction="sum")
    return total, int(keep.sum())
