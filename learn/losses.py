"""The distillation loss of the paper (Eq. 1) with the authors' conventions."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def distillation_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor,
                      lam: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """Eq. 1 as the authors coded it.

    ``loss = (1 - lam) * CE(y, softmax(s)) + lam * CE(softmax(t / T), softmax(s))``

    with ``CE(p, q) = -sum_c p_c log q_c`` averaged over the batch, ``s`` the student's logits (not
    divided by ``T``), ``t`` the teacher's logits averaged over all its frames in the crop before the
    softmax, and no ``T^2`` factor.  The teacher is frozen (its logits carry no gradient).

    Parameters
    ----------
    student_logits : (B, C)
    labels : (B,) int64 class indices
    teacher_logits : (B, C) or (B, T, C); frames are averaged
    """
    if teacher_logits.dim() == 3:
        teacher_logits = teacher_logits.mean(1)
    log_q = F.log_softmax(student_logits, dim=-1)
    hard = F.nll_loss(log_q, labels)
    soft_targets = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    soft = -(soft_targets * log_q).sum(-1).mean()
    return (1 - lam) * hard + lam * soft


class DistillationLoss(nn.Module):
    """Module form of :func:`distillation_loss`."""

    def __init__(self, lam: float = 0.5, temperature: float = 1.0):
        super().__init__()
        self.lam, self.temperature = lam, temperature

    def forward(self, student_logits, labels, teacher_logits):
        return distillation_loss(student_logits, labels, teacher_logits, self.lam, self.temperature)
