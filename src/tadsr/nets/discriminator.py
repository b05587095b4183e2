"""The time-aware latent discriminator of TAD-SR (He et al., arXiv 2408.07476), as the
official code builds it.

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

``PixelDiscriminator`` is this project's alternative for small models (``disc_kind: pixel``):
the same time conditioning, but a strided convolutional patch discriminator that reads the
decoded noisy image x_t at full resolution instead of the teacher's pooled encoder maps,
where the student's missing high frequencies live (MODEL_CARD.md, "The realism losses").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from tadsr.nets.blocks import zero_init

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
        self.conv = zero_init(nn.Conv2d(channels, channels, 3, padding=1))
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


class _FiLMConv(nn.Module):
    """spectral-norm conv -> time FiLM (scale, shift) -> LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, temb_dim: int):
        super().__init__()
        self.conv = spectral_norm(nn.Conv2d(c_in, c_out, k, stride, padding=(k - 1) // 2))
        self.film = nn.Linear(temb_dim, 2 * c_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb).to(x.dtype).chunk(2, dim=1)
        h = self.conv(x) * (1 + scale[..., None, None]) + shift[..., None, None]
        return nn.functional.leaky_relu(h, 0.2)


def high_pass(x: Tensor) -> Tensor:
    """x minus its 5x5 box blur (reflect padding): the detail a blurry output lacks."""
    blur = nn.functional.avg_pool2d(nn.functional.pad(x, (2, 2, 2, 2), mode="reflect"), 5, 1)
    return x - blur


def local_energy(x: Tensor, window: int) -> Tensor:
    """Log of the high-pass energy averaged over a ``window``-pixel neighbourhood, per channel,
    centred near 0 for photo detail: (log(1e-4 + box(hp(x)^2)) + 5) / 2.

    A statistic that spectral-normalised layers cannot build from hp(x) itself (a square),
    and the one that the fixed Laplacian-energy detector uses: the student's high frequencies
    carry about an eighth of the HR's energy, a gap of about 2 in this log."""
    e = high_pass(x).pow(2)
    pad = window // 2
    e = nn.functional.avg_pool2d(
        nn.functional.pad(e, (pad, window - 1 - pad, pad, window - 1 - pad), mode="reflect"),
        window,
        1,
    )
    return (torch.log(e + 1e-4) + 5.0) / 2.0


class PixelDiscriminator(nn.Module):
    """A time-aware patch discriminator on the decoded image x_t (B, 3, H, W).

    Its input is the image and its fixed high-pass (x - 5x5 box blur) times ``hf_gain``: with
    spectral normalisation every layer passes small inputs on as small, and the student's
    missing detail is small (about 0.07 RMS in [-1, 1]); on the same held-out crops a D
    without this input stayed at AUC 0.54-0.56 after 300 updates, with it 0.72 and rising
    (MODEL_CARD.md). Then conv 3x3 (width w) -> conv 4x4 /2 (2w) -> conv 4x4 /2 (4w) ->
    conv 3x3 (4w) -> conv 3x3 to one logit per position of the H/4 x W/4 grid (a receptive
    field of about 30 pixels).
    Every conv is spectral-normalised and FiLM-modulated by the sinusoidal embedding of t_d
    (zero-initialised, so the untrained heads ignore time). ``forward`` takes the same
    (list of maps, t) as ``TimeAwareDiscriminator`` and reads only the first map.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 32,
        temb_dim: int = TEMB_DIM,
        hf_gain: float = 4.0,
        energy_window: int = 0,
    ):
        super().__init__()
        self.temb_dim = temb_dim
        self.hf_gain = hf_gain
        self.energy_window = energy_window
        w = width
        c_in = (1 + bool(hf_gain) + bool(energy_window)) * in_channels
        self.blocks = nn.ModuleList(
            [
                _FiLMConv(c_in, w, 3, 1, temb_dim),
                _FiLMConv(w, 2 * w, 4, 2, temb_dim),
                _FiLMConv(2 * w, 4 * w, 4, 2, temb_dim),
                _FiLMConv(4 * w, 4 * w, 3, 1, temb_dim),
            ]
        )
        self.out = spectral_norm(nn.Conv2d(4 * w, 1, 3, padding=1))

    def forward(self, features: list[Tensor], t: Tensor) -> list[Tensor]:
        """Logits as one head, (B, 1, H/4 * W/4)."""
        h = features[0].contiguous()
        maps = [h]
        if self.hf_gain:
            maps.append(self.hf_gain * high_pass(h))
        if self.energy_window:
            maps.append(local_energy(h, self.energy_window))
        h = torch.cat(maps, dim=1) if len(maps) > 1 else h
        emb = timestep_sinusoid(t, self.temb_dim)
        for block in self.blocks:
            h = block(h, emb)
        return [self.out(h).flatten(2)]
