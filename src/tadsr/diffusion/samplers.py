"""The denoiser and the samplers over it.

`Denoiser(net, process)` is D(x_t, t, lq) -> x0_hat: it owns the network's input scaling and
the map from the process's steps to the network's timesteps (as k-diffusion's wrappers own
c_in), so a network never sees eta or kappa and a respaced process needs nothing passed
beside it. The samplers are pure functions of (denoiser, y, lq, noise); the ancestral, the
deterministic and the one-step sampler share one loop, which calls `callback(i, x, x0_hat)`
after each step (progress, previews, cancelling), and the ancestral one asks
`step_noise(i, shape)` for each step's noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from tadsr.diffusion.schedule import Process

Net = Callable[[Tensor, Tensor, Tensor | None], Tensor]


@runtime_checkable
class FeatureNet(Protocol):
    """A network that also gives its encoder's feature maps (SwinUNet)."""

    def encoder_features(self, x: Tensor, t: Tensor, lq: Tensor | None) -> list[Tensor]: ...


class Denoiser:
    """x0_hat = net(x_t / sqrt(kappa^2 eta_t + 1), net_timesteps[t], lq)."""

    def __init__(self, net: Net, process: Process):
        self.net = net
        self.process = process

    def _inputs(self, x_t: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        p = self.process
        tt = p.timesteps(t, x_t.shape[0], x_t.device) if isinstance(t, int) else t
        return p.scale_input(x_t, tt), p.net_timesteps.to(tt.device)[tt]

    def __call__(self, x_t: Tensor, t: int | Tensor, lq: Tensor | None) -> Tensor:
        """t: the process step, an int or a (B,) tensor of indices."""
        x, t_net = self._inputs(x_t, t)
        return self.net(x, t_net, lq)

    def features(self, x_t: Tensor, t: int | Tensor, lq: Tensor | None) -> list[Tensor]:
        """The network's encoder feature maps at x_t (what the TAD-SR discriminator reads)."""
        net = self.net
        if not isinstance(net, FeatureNet):
            raise TypeError(f"Denoiser.features: {type(net).__name__} has no encoder_features")
        x, t_net = self._inputs(x_t, t)
        return net.encoder_features(x, t_net, lq)


def _noise(like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device="cpu").to(
        like.device
    )


StepNoise = Callable[[int, tuple[int, ...]], Tensor]
"""`step_noise(i, shape)`: the noise the i-th step draws (a tensor of that shape)."""

Callback = Callable[[int, Tensor, Tensor], object]
"""`callback(i, x, x0_hat)` after the i-th step (k-diffusion's sampler callback): `x` the
state the step produced (the final latent after the last step), `x0_hat` the denoiser's
estimate it used. An exception raised in it stops the sampling and propagates (cancelling)."""


def _sample(
    denoiser: Denoiser,
    y: Tensor,
    lq: Tensor | None,
    noise: Tensor | None,
    generator: torch.Generator | None,
    update: Callable[[int, int, Tensor, Tensor, Tensor], Tensor],
    callback: Callback | None,
    steps: Sequence[int] | None = None,
) -> Tensor:
    """x_{T-1} = y + kappa sqrt(eta_{T-1}) noise; then x = update(i, t, x0_hat, x, t) for the
    process steps t of `steps` (all of them, T-1 down to 0, by default), where the last
    update returns the final latent."""
    process = denoiser.process
    x = process.prior_sample(y, _noise(y, generator) if noise is None else noise)
    for i, t in enumerate(range(process.last_t, -1, -1) if steps is None else steps):
        tt = process.timesteps(t, y.shape[0], y.device)
        x0 = denoiser(x, tt, lq)
        x = update(i, t, x0, x, tt)
        if callback is not None:
            callback(i, x, x0)
    return x


def sample_ancestral(
    denoiser: Denoiser,
    y: Tensor,
    lq: Tensor | None,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    step_noise: StepNoise | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """ResShift's sampler: x_{t-1} ~ q(x_{t-1} | x_t, x0_hat); `step_noise(i, shape)` is the
    noise of the i-th step (asked for each step but the last, in order), else drawn from
    `generator`."""
    process = denoiser.process

    def update(i: int, t: int, x0: Tensor, x: Tensor, tt: Tensor) -> Tensor:
        mean = process.posterior_mean(x0, x, tt)
        if t == 0:
            return mean
        n = step_noise(i, tuple(y.shape)) if step_noise is not None else _noise(y, generator)
        return mean + torch.exp(0.5 * process.posterior_log_variance(tt, x)) * n

    return _sample(denoiser, y, lq, noise, generator, update, callback)


def sample_deterministic(
    denoiser: Denoiser,
    y: Tensor,
    lq: Tensor | None,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """SinSR's deterministic update, used by distillation: x_{t-1} = k x0_hat + m x_t + j y."""
    process = denoiser.process

    def update(i: int, t: int, x0: Tensor, x: Tensor, tt: Tensor) -> Tensor:
        return x0 if t == 0 else process.ddim_step(x0, x, y, tt)

    return _sample(denoiser, y, lq, noise, generator, update, callback)


def sample_one_step(
    denoiser: Denoiser,
    y: Tensor,
    lq: Tensor | None,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """The student: x0_hat = D(y + kappa sqrt(eta_{T-1}) eps, T-1, lq), the shared loop run
    over the one step T-1."""
    last = denoiser.process.last_t
    return _sample(
        denoiser, y, lq, noise, generator, lambda i, t, x0, x, tt: x0, callback, [last]
    )
