"""The time-aware latent discriminator of TAD-SR (SPEC §5.3), as the official code builds it.

Features come from the frozen teacher UNet's encoder (``SwinUNet.encoder_features``: after
each downsample, the last encoder block and the middle block, with the LR conditioning).
Only these heads learn. Per scale k with C_k channels:

- a sinusoidal embedding of t_d (dimension 160, no MLP) -> SiLU -> Linear gives a scale and
  shift (2 C_k) for the GroupNorm(32)-normalised features; h = GN(F)(1 + s) + b -> SiLU ->
  zero-initialised 3x3 conv; flattened to (B, C_k, H*W);
- a head of spectral-normalised 1-D convs with circular padding that keeps C_k channels:
  [k1 conv -> GroupNorm(4) -> LeakyReLU 0.2], ONE residual block of the same with kernel 9
  combined as (f(x) + x) / sqrt(2), then a k1 conv C_k -> 64 logits.

The hinge losses (``tadsr.losses.adversarial``) take one mean over the logits of all heads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

TEMB_DIM = 160  # the official heads' time-embedding width
LOGITS = 64  # logit channels per position


def timestep_sinusoid(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """[cos(t f), sin(t f)] with f_i = exp(-ln(max_period) i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _groups(wanted: int, c: int) -> int:
    """``wanted`` groups, or the largest divisor of c below it (small test widths)."""
    return math.gcd(wanted, c)


class _SNConvBlock(nn.Module):
    """spectral-norm Conv1d (circular padding) -> GroupNorm(4) -> LeakyReLU(0.2)."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        conv = nn.Conv1d(channels, channels, k, padding=k // 2, padding_mode="circular")
        self.conv = spectral_norm(conv)
        self.norm = nn.GroupNorm(_groups(4, channels), channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class ScaleHead(nn.Module):
    """One time-conditioned head for one feature scale of C channels."""

    def __init__(self, channels: int, temb_dim: int = TEMB_DIM, logits: int = LOGITS):
        super().__init__()
        self.temb_dim = temb_dim
        self.norm = nn.GroupNorm(_groups(32, channels), channels)
        self.film = nn.Linear(temb_dim, 2 * channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.inp = _SNConvBlock(channels, 1)
        self.res = _SNConvBlock(channels, 9)
        self.out = spectral_norm(nn.Conv1d(channels, logits, 1))

    def forward(self, feat: Tensor, t: Tensor) -> Tensor:
        # NCHW-contiguous: torch 2.13's channels-last GroupNorm backward crashes on CPU for
        # the strides these encoder features can arrive with.
        feat = feat.contiguous()
        emb = self.film(nn.functional.silu(timestep_sinusoid(t, self.temb_dim)))
        scale, shift = emb.to(feat.dtype).chunk(2, dim=1)
        h = self.norm(feat) * (1 + scale[..., None, None]) + shift[..., None, None]
        h = self.conv(nn.functional.silu(h))
        h = self.inp(h.flatten(2))  # (B, C, H*W)
        h = (self.res(h) + h) / math.sqrt(2)
        return self.out(h)


class TimeAwareDiscriminator(nn.Module):
    """Heads over the frozen teacher's encoder features; the teacher is not a submodule."""

    def __init__(self, feature_channels: list[int], temb_dim: int = TEMB_DIM):
        super().__init__()
        self.heads = nn.ModuleList(ScaleHead(c, temb_dim) for c in feature_channels)

    def forward(self, features: list[Tensor], t: Tensor) -> list[Tensor]:
        """Logits per head, each (B, 64, H_k * W_k)."""
        return [head(f, t) for head, f in zip(self.heads, features, strict=True)]
