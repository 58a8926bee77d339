"""The distillation loss against a computation by hand (math only, no torch on that side)."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.train.data import IGNORE
from thrifty.train.losses import answer_ce, kd_loss

STUDENT = [[[1.0, 2.0, 0.5], [0.2, -1.0, 3.0], [2.0, 0.0, 0.0]]]  # (batch 1, seq 3, vocab 3)
TEACHER = [[[0.5, 2.5, 0.0], [1.0, 0.0, 2.0], [0.0, 0.0, 9.0]]]
LABELS = [[IGNORE, 1, 2]]  # position 0 is prompt; positions 0 and 1 predict labels 1 and 2


def _softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(x / t) for x in row]
    return [e / sum(exps) for e in exps]


def _by_hand(alpha: float, t: float) -> tuple[float, float, float]:
    kls, ces = [], []
    for position, target in ((0, 1), (1, 2)):  # the last position predicts nothing
        p_teacher = _softmax(TEACHER[0][position], t)
        p_student = _softmax(STUDENT[0][position], t)
        kls.append(sum(pt * math.log(pt / ps) for pt, ps in zip(p_teacher, p_student, strict=True)))
        ces.append(-math.log(_softmax(STUDENT[0][position], 1.0)[target]))
    kl, ce = sum(kls) / 2, sum(ces) / 2
    return alpha * t * t * kl + (1 - alpha) * ce, kl, ce


@pytest.mark.parametrize(("alpha", "temperature"), [(0.7, 2.0), (0.5, 1.0), (0.0, 3.0)])
def test_kd_loss_matches_the_hand_computation(alpha: float, temperature: float) -> None:
    loss = kd_loss(
        torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), alpha, temperature
    )
    total, kl, ce = _by_hand(alpha, temperature)
    assert float(loss.kl) == pytest.approx(kl, rel=1e-5)
    assert float(loss.ce) == pytest.approx(ce, rel=1e-5)
    assert float(loss.total) == pytest.approx(total, rel=1e-5)


def test_kd_loss_is_zero_kl_against_itself_and_ignores_prompt_positions() -> None:
    student = torch.tensor(STUDENT, requires_grad=True)
    teacher = torch.tensor(STUDENT)
    teacher[0, 2] = 100.0  # the last position predicts no label: it must not count
    loss = kd_loss(student, teacher, torch.tensor(LABELS))
    assert float(loss.kl.detach()) == pytest.approx(0.0, abs=1e-7)
    loss.total.backward()
    assert student.grad is not None and torch.all(student.grad[0, 2] == 0)


def test_answer_ce_sums_over_answer_tokens_only() -> None:
    total, count = answer_ce(torch.tensor(STUDENT), torch.tensor(LABELS))
    assert count == 2
    assert float(total) == pytest.approx(2 * _by_hand(0.0, 1.0)[2], rel=1e-5)
