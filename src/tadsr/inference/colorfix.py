"""Colour correction of an SR output against its LR input (as in StableSR).

wavelet: out = high(sr) + low(up(lq)), where low is a 5-level a-trous wavelet low-pass (a
3x3 binomial kernel dilated 1, 2, 4, 8, 16) and high = x - low(x); up is bicubic x scale.
adain:   out = (sr - mean(sr)) / std(sr) * std(lq) + mean(lq), per channel (Huang & Belongie).
Images are (B, 3, H, W) in [-1, 1]; the result is clamped to [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.inference.core import COLOR_FIXES  # the names live where no torch is imported

__all__ = ["COLOR_FIXES", "adain_color_fix", "apply_color_fix", "wavelet_color_fix", "wavelet_low"]


def wavelet_low(x: Tensor, levels: int = 5) -> Tensor:
    """Low-frequency part after `levels` a-trous blurs (dilation 2^i, replicate padding)."""
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    kernel = (k[:, None] * k[None, :] / 16.0).expand(x.shape[1], 1, 3, 3).contiguous()
    low = x
    for i in range(levels):
        d = 2**i
        h, w = low.shape[-2:]
        mode = "replicate" if d >= h or d >= w else "reflect"
        padded = F.pad(low, (d, d, d, d), mode=mode)
        low = F.conv2d(padded, kernel, dilation=d, groups=x.shape[1])
    return low


def wavelet_color_fix(sr: Tensor, lq: Tensor) -> Tensor:
    """out = sr - low(sr) + low(bicubic_up(lq)) (StableSR's wavelet reconstruction)."""
    ref = F.interpolate(lq.float(), size=sr.shape[-2:], mode="bicubic", align_corners=False)
    sr = sr.float()
    return (sr - wavelet_low(sr) + wavelet_low(ref)).clamp(-1, 1)


def adain_color_fix(sr: Tensor, lq: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-channel mean/std matching of sr to lq (adaptive instance normalisation)."""
    sr, lq = sr.float(), lq.float()
    s_mean, s_std = sr.mean((-2, -1), keepdim=True), sr.std((-2, -1), keepdim=True)
    l_mean, l_std = lq.mean((-2, -1), keepdim=True), lq.std((-2, -1), keepdim=True)
    if sr.shape[-1] * sr.shape[-2] < 2 or lq.shape[-1] * lq.shape[-2] < 2:
        s_std, l_std = torch.ones_like(s_mean), torch.ones_like(l_mean)
    return ((sr - s_mean) / (s_std + eps) * l_std + l_mean).clamp(-1, 1)


def apply_color_fix(name: str, sr: Tensor, lq: Tensor) -> Tensor:
    """Dispatch on `name` in COLOR_FIXES."""
    match name:
        case "none":
            return sr
        case "wavelet":
            return wavelet_color_fix(sr, lq)
        case "adain":
            return adain_color_fix(sr, lq)
        case _:
            raise ValueError(f"unknown color fix {name!r} (choose from {', '.join(COLOR_FIXES)})")
