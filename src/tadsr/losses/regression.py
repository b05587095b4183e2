"""Distillation regression (SinSR / TAD-SR): L_reg = mean((x0_hat - z_teacher)^2)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def regression_loss(x0_hat: Tensor, z_teacher: Tensor) -> Tensor:
    """L_reg = || x0_hat - z_teacher ||^2 (mean over all elements)."""
    return F.mse_loss(x0_hat, z_teacher.detach())
