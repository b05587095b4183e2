"""Hinge losses of the time-aware latent discriminator (SPEC §5.3).

L_D = mean relu(1 - D(real)) + mean relu(1 + D(fake)),   L_G = -mean D(fake)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def d_hinge_loss(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """L_D summed over the discriminator's scales."""
    return sum(
        F.relu(1 - r).mean() + F.relu(1 + f).mean()
        for r, f in zip(real_logits, fake_logits, strict=True)
    )


def g_hinge_loss(fake_logits: list[Tensor]) -> Tensor:
    """L_G = -mean D(fake), summed over scales."""
    return sum(-f.mean() for f in fake_logits)
