"""Optimisation pieces shared by every objective: the learning-rate curve, gradient-norm
clipping, mixed precision."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor


def lr_lambda(warmup: int, decay_from: int = 0, total: int = 0):
    """Learning-rate factor: linear warm-up over `warmup` steps, then constant; with
    `decay_from` > 0, a cosine decay from that step to 0 at step `total`. A pure function of
    the step, so a resumed run (even one given a longer `total`) follows the same curve."""

    def factor(step: int) -> float:
        f = min(1.0, (step + 1) / max(1, warmup))
        if 0 < decay_from <= step and total > decay_from:
            done = min(1.0, (step - decay_from) / (total - decay_from))
            f *= 0.5 * (1 + math.cos(math.pi * done))
        return f

    return factor


def adamw(params, optim) -> torch.optim.AdamW:
    """AdamW with an `OptimConfig`'s settings."""
    return torch.optim.AdamW(
        params, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay
    )


def disc_adamw(params, lr: float) -> torch.optim.AdamW:
    """The discriminator's AdamW: betas (0.9, 0.999), no weight decay (TAD-SR's settings)."""
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)


def grad_norm(params, max_norm: float) -> Tensor:
    """Total gradient norm, clipped to ``max_norm`` when it is > 0 (0 = no clipping)."""
    return torch.nn.utils.clip_grad_norm_(list(params), max_norm if max_norm > 0 else math.inf)


def autocast_for(mode: str, device: torch.device):
    """The autocast context of a `run.mixed_precision` setting (a null context for "no")."""
    from tadsr.utils.device import autocast_dtype

    dtype = autocast_dtype(mode, device)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def finite_or_raise(value: float, step: int, name: str = "loss") -> None:
    if not math.isfinite(value):
        raise FloatingPointError(f"{name} is {value} at step {step}; lower the learning rate")
