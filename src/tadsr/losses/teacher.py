"""The ResShift teacher's loss (ResShift paper, arXiv 2307.12348, eq. 5 with x0-prediction):
t ~ U{0..T-1}, x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps, L = || D(x_t, t, lq) - x0 ||^2."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.diffusion.samplers import Denoiser


def teacher_loss(
    denoiser: Denoiser,
    x0: Tensor,
    y: Tensor,
    lq: Tensor | None,
    generator: torch.Generator,
    amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> Tensor:
    """The x0 regression at a uniformly drawn step: t, then eps, from `generator` (in that
    order); `amp()` the mixed-precision context of the network's forward pass."""
    process = denoiser.process
    t = torch.randint(0, process.num_steps, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    t = t.to(x0.device)
    x_t = process.q_sample(x0, y, t, noise)
    with amp():
        pred = denoiser(x_t, t, lq)
    return F.mse_loss(pred.float(), x0)
