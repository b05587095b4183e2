"""The time-aware latent discriminator of TAD-SR (SPEC §5.3).

Features come from the frozen teacher UNet's encoder (five scales, with the LR conditioning).
Only these heads learn. Per scale: a sinusoidal embedding of t_d -> SiLU -> Linear gives a
scale and shift for the group-normalised features -> SiLU -> zero-initialised 3x3 conv;
flatten to (B, C, H*W); a head of spectral-normalised 1-D convs (k1 conv -> GroupNorm ->
LeakyReLU 0.2, a residual block of the same with kernel 9 combined as (f(x)+x)/sqrt(2), then
a k1 conv to 64 logits).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def timestep_sinusoid(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """[cos(t f), sin(t f)] with f_i = exp(-ln(max_period) i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _groups(c: int) -> int:
    return math.gcd(32, c)


class _SNConvBlock(nn.Module):
    """spectral-norm Conv1d -> GroupNorm -> LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.conv = spectral_norm(nn.Conv1d(cin, cout, k, padding=k // 2))
        self.norm = nn.GroupNorm(_groups(cout), cout)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class ScaleHead(nn.Module):
    """One time-conditioned head for one feature scale."""

    def __init__(self, channels: int, hidden: int = 64, temb_dim: int = 128, logits: int = 64):
        super().__init__()
        self.temb_dim = temb_dim
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.film = nn.Linear(temb_dim, 2 * channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.inp = _SNConvBlock(channels, hidden, 1)
        self.res = nn.Sequential(_SNConvBlock(hidden, hidden, 9), _SNConvBlock(hidden, hidden, 9))
        self.out = spectral_norm(nn.Conv1d(hidden, logits, 1))

    def forward(self, feat: Tensor, t: Tensor) -> Tensor:
        # NCHW-contiguous: torch 2.13's channels-last GroupNorm backward crashes on CPU for
        # the strides these encoder features can arrive with.
        feat = feat.contiguous()
        emb = self.film(nn.functional.silu(timestep_sinusoid(t, self.temb_dim)))
        scale, shift = emb.to(feat.dtype).chunk(2, dim=1)
        h = self.norm(feat) * (1 + scale[..., None, None]) + shift[..., None, None]
        h = self.conv(nn.functional.silu(h))
        h = h.flatten(2)  # (B, C, H*W)
        h = self.inp(h)
        h = (self.res(h) + h) / math.sqrt(2)
        return self.out(h)


class TimeAwareDiscriminator(nn.Module):
    """Heads over the frozen teacher's encoder features; the teacher is not a submodule."""

    def __init__(self, feature_channels: list[int], hidden: int = 64, temb_dim: int = 128):
        super().__init__()
        self.heads = nn.ModuleList(ScaleHead(c, hidden, temb_dim) for c in feature_channels)

    def forward(self, features: list[Tensor], t: Tensor) -> list[Tensor]:
        return [head(f, t) for head, f in zip(self.heads, features, strict=True)]
