"""Samplers over any x0-predicting network `net(x_scaled, t, lq) -> x0_hat`.

Pure functions: they take the process, the LR latent y, the LR image (conditioning) and the
noise (or a generator), and return the final latent. The one-step sampler is the one-step
case of the same signature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from tadsr.diffusion.schedule import Process

Net = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def _noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device="cpu").to(
        like.device
    )


def predict_x0(
    net: Net,
    process: Process,
    x_t: Tensor,
    t: int | Tensor,
    lq: Tensor | None,
    t_net: Tensor | None = None,
) -> Tensor:
    """x0_hat = net(x_t / sqrt(kappa^2 eta_t + 1), t, lq); t_net: index the net sees."""
    tt = process.timesteps(t, x_t.shape[0], x_t.device) if isinstance(t, int) else t
    return net(process.scale_input(x_t, tt), tt if t_net is None else t_net, lq)


def sample_ancestral(
    net: Net,
    process: Process,
    y: Tensor,
    lq: Tensor | None,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    step_noise: Sequence[Tensor] | None = None,
    timestep_map: Tensor | None = None,
) -> Tensor:
    """ResShift's sampler: x_{T-1} = prior, then x_{t-1} ~ q(x_{t-1} | x_t, x0_hat)."""
    x = process.prior_sample(y, _noise(y, generator) if noise is None else noise)
    for i, t in enumerate(range(process.last_t, -1, -1)):
        tt = process.timesteps(t, y.shape[0], y.device)
        t_net = None if timestep_map is None else timestep_map.to(y.device)[tt]
        x0 = predict_x0(net, process, x, tt, lq, t_net)
        mean = process.posterior_mean(x0, x, tt)
        if t == 0:
            x = mean
        else:
            n = step_noise[i] if step_noise is not None else _noise(y, generator)
            x = mean + torch.exp(0.5 * process.posterior_log_variance(tt, x)) * n
    return x


def sample_deterministic(
    net: Net,
    process: Process,
    y: Tensor,
    lq: Tensor | None,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    timestep_map: Tensor | None = None,
) -> Tensor:
    """The deterministic update used by distillation: x_{t-1} = k x0_hat + m x_t + j y."""
    x = process.prior_sample(y, _noise(y, generator) if noise is None else noise)
    for t in range(process.last_t, -1, -1):
        tt = process.timesteps(t, y.shape[0], y.device)
        t_net = None if timestep_map is None else timestep_map.to(y.device)[tt]
        x0 = predict_x0(net, process, x, tt, lq, t_net)
        x = x0 if t == 0 else process.ddim_step(x0, x, y, tt)
    return x


def sample_one_step(
    net: Net,
    process: Process,
    y: Tensor,
    lq: Tensor | None,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The student: x0_hat = net(scale(y + kappa sqrt(eta_{T-1}) eps), T-1, lq)."""
    x = process.prior_sample(y, _noise(y, generator) if noise is None else noise)
    return predict_x0(net, process, x, process.last_t, lq)
