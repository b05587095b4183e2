"""High-frequency enhanced score distillation (TAD-SR paper, He et al., arXiv 2408.07476).

    x_s = q(x0_hat, t_h, n),  x_r = q(z_ref, t_h, n),  t_h ~ U{0, 1, 2}
    eps_hat(x) = (x - x0_pred - eta_t (y - x0_pred)) / (kappa sqrt(eta_t))
    g = stopgrad(eps_hat(x_s) - eps_hat(x_r)),   L_hfsd = mean(g * x0_hat)

z_ref is the teacher's sample (`reference="teacher"`, TAD-SR) or the HR latent
(`reference="hr"`, the official code's `score_distill_target` option: the caller passes the
HR latent as `z_ref`). With `reference="noise"` it is plain score distillation
(g = eps_hat(x_s) - n), which the paper shows to be biased; `noise="uniform"` reproduces
the official code's U[0, 1) draw.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tadsr.diffusion.samplers import Denoiser
from tadsr.diffusion.schedule import Process


def hfsd_loss(
    teacher: Callable,
    process: Process,
    x0_hat: Tensor,
    z_ref: Tensor,
    y: Tensor,
    lq: Tensor,
    generator: torch.Generator,
    *,
    max_t: int = 3,
    reference: str = "teacher",
    noise: str = "gaussian",
) -> Tensor:
    """L_hfsd for one batch; the teacher is frozen and called without gradients."""
    b = x0_hat.shape[0]
    t = torch.randint(0, max_t, (b,), generator=generator).to(x0_hat.device)
    if noise == "gaussian":
        n = torch.randn(x0_hat.shape, generator=generator)
    elif noise == "uniform":  # the official code's draw, kept only as an option
        n = torch.rand(x0_hat.shape, generator=generator)
    else:
        raise ValueError(f"noise must be 'gaussian' or 'uniform', got {noise!r}")
    n = n.to(x0_hat.device, x0_hat.dtype)
    denoise = Denoiser(teacher, process)
    with torch.no_grad():
        x_s = process.q_sample(x0_hat.detach(), y, t, n)
        eps_s = process.eps_from_x0(x_s, y, t, denoise(x_s, t, lq))
        if reference in ("teacher", "hr"):
            x_r = process.q_sample(z_ref, y, t, n)
            eps_r = process.eps_from_x0(x_r, y, t, denoise(x_r, t, lq))
        elif reference == "noise":
            eps_r = n
        else:
            raise ValueError(f"reference must be 'teacher', 'hr' or 'noise', got {reference!r}")
        g = eps_s - eps_r
    return (g * x0_hat).mean()
