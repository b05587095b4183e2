"""Hinge losses of the time-aware latent discriminator (TAD-SR paper, arXiv 2408.07476), reduced as
the official code reduces them: the logits of all heads are flattened per sample and
concatenated, and each loss takes ONE mean over them, so a head weighs by its number of
positions (at SR size about 0.70 / 0.17 / 0.04 / 0.04 / 0.04 for the five heads).

L_D = mean relu(1 - D(real)) + mean relu(1 + D(fake)),   L_G = -mean D(fake)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def all_logits(logits: list[Tensor]) -> Tensor:
    """(B, N): every head's logits flattened per sample and concatenated."""
    return torch.cat([lg.flatten(1) for lg in logits], dim=1)


def d_hinge_loss(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """L_D over all heads' logits at once."""
    return F.relu(1 - all_logits(real_logits)).mean() + F.relu(1 + all_logits(fake_logits)).mean()


def g_hinge_loss(fake_logits: list[Tensor]) -> Tensor:
    """L_G = -mean D(fake) over all heads' logits at once."""
    return -all_logits(fake_logits).mean()
