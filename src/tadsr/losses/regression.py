"""Distillation regression (SinSR / TAD-SR): L_reg = mean((x0_hat - z_teacher)^2) (or, with
``norm="l1"``, mean |x0_hat - z_teacher|, the usual pixel loss of PSNR-oriented SR), and a
frequency-split form that weights the high frequencies the LR input cannot carry by w.

The split follows the frequency separation of Fritsche et al. (ICCVW 2019): the pixel loss
keeps the low frequencies, the discriminator is left the high ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from tadsr.nets.unet import gaussian_taps, separable_blur


def regression_loss(x0_hat: Tensor, z_teacher: Tensor, norm: str = "l2") -> Tensor:
    """L_reg = || x0_hat - z_teacher ||^2 (mean over all elements); ``norm="l1"``: the mean
    absolute difference, whose gradient does not shrink with the error, so small residuals
    (faint blotches on flat areas) weigh as much per pixel as large ones."""
    if norm == "l1":
        return F.l1_loss(x0_hat, z_teacher.detach())
    if norm != "l2":
        raise ValueError(f"regression norm must be l2 or l1, got {norm!r}")
    return F.mse_loss(x0_hat, z_teacher.detach())


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of each channel of (B,C,H,W), reflected borders."""
    taps = gaussian_taps(sigma).to(x)
    if min(x.shape[-2:]) <= taps.numel() // 2:
        raise ValueError(f"a Gaussian of sigma {sigma} needs images over {taps.numel() // 2} px")
    return separable_blur(x, taps, "reflect", x.shape[1])


def split_regression_loss(
    x0_hat: Tensor,
    target: Tensor,
    decode: Callable[[Tensor], Tensor],
    hf_weight: float,
    sigma: float,
) -> Tensor:
    """mean(d^2) - (1 - hf_weight) mean(h^2), with d = decode(x0_hat) - decode(target) and h
    its high-pass d - blur_sigma(d): per frequency f a weight 1 - (1 - w)(1 - G(f))^2 of the
    squared error (G, the Gaussian's response), 1 at low frequencies and w at the highest.
    At w = 1 this is the plain squared error of the decoded images (with a pixel-unshuffle
    codec, exactly `regression_loss`)."""
    d = decode(x0_hat) - decode(target.detach())
    h = d - gaussian_blur(d, sigma)
    return d.square().mean() - (1.0 - hf_weight) * h.square().mean()
