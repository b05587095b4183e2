"""The residual-shifting process of ResShift (Yue et al., NeurIPS 2023, arXiv 2307.12348), its
forward process, posterior and noise schedule.

    x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps            (forward marginal)
    q(x_{t-1} | x_t, x0) = N(eta_{t-1}/eta_t x_t + alpha_t/eta_t x0,
                             kappa^2 eta_{t-1}/eta_t alpha_t I)   (posterior)

All schedule arrays are float64, indexed by t = 0..T-1. Every use indexes an array with t,
casts to the working dtype and broadcasts, as the official code does, so float32 results
match it to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from tadsr.utils.config import DictConfig


@dataclass(frozen=True)
class ScheduleConfig(DictConfig):
    """The exponential eta schedule (ResShift "exponential", power p)."""

    steps: int = 15
    kappa: float = 2.0
    power: float = 0.3
    min_noise: float = 0.04
    etas_end: float = 0.99
    # SinSR (and ResShift before 2024-03) clamp the first sqrt(eta) to <= sqrt(0.001);
    # the ResShift release that ships the face teacher does not. Same values for SR.
    floor_sqrt_0001: bool = True


SCHEDULE_PRESETS: dict[str, ScheduleConfig] = {
    "sr": ScheduleConfig(),
    # official ResShift face teacher (resshift_faceir_s4.pth)
    "face": ScheduleConfig(steps=4, min_noise=0.2, floor_sqrt_0001=False),
    # the SinSR-derived form of the face schedule
    "face_sinsr": ScheduleConfig(steps=4, min_noise=0.2, floor_sqrt_0001=True),
}


def sqrt_eta_schedule(cfg: ScheduleConfig) -> Tensor:
    """sqrt(eta_t) = s1 * b ** ((t/(T-1))**p * (T-1)),  b = (etas_end/s1)**(1/(T-1))."""
    T = cfg.steps
    s1 = min(cfg.min_noise / cfg.kappa, cfg.min_noise)
    if cfg.floor_sqrt_0001:
        s1 = min(s1, math.sqrt(0.001))
    if T == 1:
        return torch.tensor([cfg.etas_end], dtype=torch.float64)
    b = math.exp(math.log(cfg.etas_end / s1) / (T - 1))
    t = torch.arange(T, dtype=torch.float64)
    exponent = (t / (T - 1)) ** cfg.power * (T - 1)
    return s1 * b**exponent


def _take(arr: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """arr[t] (float64) -> like.dtype, shaped (B, 1, 1, ...) to broadcast over `like`."""
    t = torch.as_tensor(t, device=arr.device).long().reshape(-1)
    v = arr[t].to(device=like.device, dtype=like.dtype)
    return v.reshape(-1, *([1] * (like.ndim - 1)))


class Process:
    """Residual shifting between x0 (HR latent) and y (LR latent); knows no network."""

    def __init__(self, cfg: ScheduleConfig = ScheduleConfig(), keep: Tensor | None = None):
        self.cfg = cfg
        self.kappa = float(cfg.kappa)
        full = sqrt_eta_schedule(cfg)
        # net_timesteps[t]: the timestep the network was trained at for this process's step t
        # (the identity, or the kept steps of a respaced process, as diffusers' timesteps)
        self.net_timesteps = torch.arange(full.numel()) if keep is None else keep.long()
        self.sqrt_etas = full[self.net_timesteps]
        self.num_steps = int(self.sqrt_etas.numel())
        self.etas = self.sqrt_etas**2
        self.etas_prev = torch.cat([self.etas.new_zeros(1), self.etas[:-1]])
        self.alpha = self.etas - self.etas_prev
        k2 = self.kappa**2
        self.posterior_variance = k2 * self.etas_prev / self.etas * self.alpha
        clipped = self.posterior_variance.clone()
        if self.num_steps > 1:
            clipped[0] = clipped[1]
        self.posterior_variance_clipped = clipped
        self.posterior_log_variance_clipped = torch.log(clipped)
        self.posterior_mean_coef1 = self.etas_prev / self.etas
        self.posterior_mean_coef2 = self.alpha / self.etas
        # deterministic (DDIM-like) update of SinSR: x_{t-1} = k x0 + m x_t + j y
        self.ddim_m = torch.sqrt(self.etas_prev / self.etas)
        self.ddim_k = 1 - self.etas_prev + torch.sqrt(self.etas_prev * self.etas) - self.ddim_m
        self.ddim_j = self.etas_prev - torch.sqrt(self.etas_prev * self.etas)
        # what the network sees: x_t / sqrt(kappa^2 eta_t + 1), eta cast to float32 first
        self.input_denominator = torch.sqrt(self.etas.float() * k2 + 1)

    @property
    def last_t(self) -> int:
        return self.num_steps - 1

    def timesteps(self, t: int, batch: int, device=None) -> Tensor:
        return torch.full((batch,), int(t), dtype=torch.long, device=device)

    # -- forward process ------------------------------------------------------------
    def q_sample(self, x0: Tensor, y: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) noise."""
        eta = _take(self.etas, t, x0)
        std = _take(self.kappa * self.sqrt_etas, t, x0)
        return x0 + eta * (y - x0) + std * noise

    def q_mean_variance(self, x0: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        mean = x0 + _take(self.etas, t, x0) * (y - x0)
        var = _take(self.kappa**2 * self.etas, t, x0)
        return mean, var

    def prior_sample(self, y: Tensor, noise: Tensor) -> Tensor:
        """x_{T-1} = y + kappa sqrt(eta_{T-1}) noise."""
        t = torch.full((y.shape[0],), self.last_t, dtype=torch.long)
        return y + _take(self.kappa * self.sqrt_etas, t, y) * noise

    def scale_input(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Network input normalisation x_t / sqrt(kappa^2 eta_t + 1)."""
        return x_t / _take(self.input_denominator, t, x_t)

    # -- reverse process ------------------------------------------------------------
    def posterior_mean(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Mean of q(x_{t-1} | x_t, x0): eta_{t-1}/eta_t x_t + alpha_t/eta_t x0."""
        return (
            _take(self.posterior_mean_coef1, t, x_t) * x_t
            + _take(self.posterior_mean_coef2, t, x_t) * x0
        )

    def posterior_log_variance(self, t: Tensor, like: Tensor) -> Tensor:
        return _take(self.posterior_log_variance_clipped, t, like)

    def eps_from_x0(self, x_t: Tensor, y: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """eps_hat = (x_t - x0 - eta_t (y - x0)) / (kappa sqrt(eta_t))."""
        eta = _take(self.etas, t, x_t)
        std = _take(self.kappa * self.sqrt_etas, t, x_t)
        return (x_t - x0 - eta * (y - x0)) / std

    def ddim_step(self, x0: Tensor, x_t: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """x_{t-1} = k x0 + m x_t + j y (equals x0 at t = 0)."""
        return (
            _take(self.ddim_k, t, x_t) * x0
            + _take(self.ddim_m, t, x_t) * x_t
            + _take(self.ddim_j, t, x_t) * y
        )

    def respaced(self, n: int) -> Process:
        """A process over n of the T steps (indices int(T/n * k), the last one kept); its
        `net_timesteps` map each of its steps to the network's."""
        if not 1 <= n <= self.num_steps:
            raise ValueError(f"steps must be in 1..{self.num_steps}, got {n}")
        keep = torch.tensor([int(self.num_steps / n * k) for k in range(n)], dtype=torch.long)
        if n == 1:
            keep = torch.tensor([self.last_t])
        elif keep[-1] != self.last_t:
            keep[-1] = self.last_t
        return Process(self.cfg, keep=self.net_timesteps[keep])
