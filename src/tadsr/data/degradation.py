"""Seeded degradations ``(hr, generator) -> lr`` (Real-ESRGAN, Wang et al. 2021, arXiv 2107.10833).

- :class:`RealESRGANDegradation`: the second-order model of Real-ESRGAN (Wang et al. 2021,
  Sec. 3) with the parameters ResShift / TAD-SR train with (stage 2 applied with p 0.5).
- :class:`BicubicDegradation`: antialiased bicubic downsampling.
- :class:`FaceDegradation`: the GFPGAN-style blind face model (blur, downsample, noise, JPEG).
- :class:`LRNoiseDegradation`: a sharp downscale with sensor-like noise and JPEG on the LR
  grid itself, as a camera photo or a web JPEG of a downscaled photo.

Every random number comes from the ``torch.Generator`` passed in, drawn on the generator's
device (use a CPU generator for results that are identical on any machine, whatever the
device of ``hr``). Outputs are clamped to [0, 1] and rounded to the 8-bit grid.
Parameters that Real-ESRGAN shares over a batch (resize type, scale and mode, Gaussian vs
Poisson noise, order of the last steps) are shared here too; kernels, noise levels, gray
noise and JPEG qualities are drawn per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from tadsr.data.jpeg import jpeg_compress
from tadsr.data.kernels import (
    KernelSpec,
    choice,
    filter2d,
    gaussian_kernel,
    pulse_kernel,
    random_mixed_kernel,
    sinc_kernel,
    uniform,
)
from tadsr.utils.config import DictConfig

RESIZE_MODES = ("area", "bilinear", "bicubic")


class Degradation(Protocol):
    """``deg(hr (B,3,H,W) in [0,1], generator) -> lr (B,3,H/scale,W/scale) in [0,1]``."""

    scale: int

    def __call__(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class DegradationConfig(DictConfig):
    """Parameters of the second-order Real-ESRGAN model (Real-ESRGAN, arXiv 2107.10833; defaults =
    the paper's)."""

    # stage 1
    kernel1: KernelSpec = field(default_factory=KernelSpec)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_modes: tuple[str, ...] = RESIZE_MODES
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma on the 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # stage 2
    second_order_prob: float = 0.5  # ResShift; the official Real-ESRGAN always runs stage 2
    second_blur_prob: float = 0.8
    kernel2: KernelSpec = field(default_factory=lambda: KernelSpec(sigma=(0.2, 1.5)))
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # final resize to HR/scale, sinc and JPEG in either order
    final_sinc_prob: float = 0.8
    final_sinc_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    final_sinc_pad: int = 21


@dataclass(frozen=True)
class FaceDegradationConfig:
    """GFPGAN-style face degradation (GFPGAN, arXiv 2101.04061: kernel 41, sigma 0.1-15, downsample
    0.8-32,     noise 0-20, JPEG 30-100, gray 0.01)."""

    kernel_size: int = 41
    kernel_types: tuple[str, ...] = ("iso", "aniso")
    kernel_probs: tuple[float, ...] = (0.5, 0.5)
    sigma: tuple[float, float] = (0.1, 15.0)
    downsample_range: tuple[float, float] = (0.8, 32.0)
    noise_range: tuple[float, float] = (0.0, 20.0)
    jpeg_range: tuple[float, float] = (30.0, 100.0)
    gray_prob: float = 0.01


@dataclass(frozen=True)
class LRNoiseConfig(DictConfig):
    """Noise and JPEG on the final LR grid: Gaussian (colour or gray) or Poisson noise, then
    JPEG. The ranges reach past the photo-val set's heavy kind (sigma 10-15, JPEG 50-60)."""

    gaussian_noise_prob: float = 0.6
    noise_range: tuple[float, float] = (2.0, 20.0)  # sigma on the 0-255 scale
    poisson_scale_range: tuple[float, float] = (0.2, 3.0)
    gray_noise_prob: float = 0.3
    jpeg_range: tuple[float, float] = (40.0, 95.0)


#: Named LR-grid presets: "lr_noise" spans light to heavy; "lr_noise_heavy" draws only from
#: the heavy end (noise sigma 8-20, JPEG 30-65), where the photo-val heavy kind (sigma 10-15,
#: JPEG 50-60) lies. With "lr_noise" about one sample in five lands in that range.
LR_NOISE_PRESETS: dict[str, LRNoiseConfig] = {
    "lr_noise": LRNoiseConfig(),
    "lr_noise_heavy": LRNoiseConfig(
        gaussian_noise_prob=0.7,
        noise_range=(8.0, 20.0),
        poisson_scale_range=(1.0, 3.0),
        jpeg_range=(30.0, 65.0),
    ),
}


#: Named presets: "paper" (ResShift / TAD-SR training) and "realesrgan_official".
PRESETS: dict[str, DegradationConfig] = {
    "paper": DegradationConfig(),
    "realesrgan_official": DegradationConfig(second_order_prob=1.0),
    # What a phone photo or a web JPEG looks like rather than a worst case: light blur, little
    # noise, mild JPEG, stage 2 at p 0.5 and no final sinc (so no ringing to undo).
    "mild": DegradationConfig(
        kernel1=KernelSpec(sigma=(0.2, 1.5)),
        resize_prob=(0.2, 0.5, 0.3),
        resize_range=(0.5, 1.2),
        noise_range=(1.0, 10.0),
        poisson_scale_range=(0.05, 1.0),
        jpeg_range=(60.0, 95.0),
        kernel2=KernelSpec(sigma=(0.2, 1.0)),
        resize_range2=(0.6, 1.2),
        noise_range2=(1.0, 8.0),
        poisson_scale_range2=(0.05, 0.8),
        jpeg_range2=(60.0, 95.0),
        final_sinc_prob=0.0,
    ),
}


# --------------------------------------------------------------------------- building blocks


def _rand(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """``n`` uniforms in [lo, hi) as float64 on the CPU."""
    u = torch.rand(n, generator=g, device=g.device, dtype=torch.float64).cpu()
    return lo + (hi - lo) * u


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid."""
    return (x * 255.0).round().clamp(0, 255) / 255.0


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``F.interpolate`` to ``size`` (no antialiasing, as in Real-ESRGAN)."""
    size = (max(1, int(size[0])), max(1, int(size[1])))
    if tuple(x.shape[-2:]) == size:
        return x
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=size, mode=mode, align_corners=False)
    return F.interpolate(x, size=size, mode=mode)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (B,1,H,W)."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def add_gaussian_noise(
    x: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """x + N(0, σ²) per sample (σ in [0,1] units, shape (B,)); gray samples get the same noise
    in all channels. Not clamped."""
    b, c, h, w = x.shape
    n = torch.randn((b, c, h, w), generator=g, device=g.device, dtype=torch.float32)
    n = n.to(device=x.device, dtype=x.dtype)
    gray = gray.to(x.device).view(b, 1, 1, 1)
    n = torch.where(gray, n[:, :1].expand(b, c, h, w), n)
    return x + n * sigma.to(device=x.device, dtype=x.dtype).view(b, 1, 1, 1)


def add_poisson_noise(
    x: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """Poisson (shot) noise as in Real-ESRGAN: photon count 2^ceil(log2(#distinct values)),
    noise = (Poisson(x·v)/v − x)·scale; gray samples use the luma noise in all channels."""
    b, c = x.shape[:2]
    xc = x.clamp(0, 1).to(device=g.device, dtype=torch.float32)
    lum = rgb_to_gray(xc)
    out = torch.empty_like(xc)
    for i in range(b):
        src = lum[i] if bool(gray[i]) else xc[i]
        vals = 2 ** math.ceil(math.log2(max(2, torch.unique(src).numel())))
        noisy = torch.poisson(src * vals, generator=g) / vals
        out[i] = (noisy - src).expand(c, -1, -1)
    out = out.to(device=x.device, dtype=x.dtype)
    return x + out * scale.to(device=x.device, dtype=x.dtype).view(b, 1, 1, 1)


def random_noise(
    x: torch.Tensor,
    g: torch.Generator,
    gaussian_prob: float,
    sigma_range: tuple[float, float],
    poisson_range: tuple[float, float],
    gray_prob: float,
    gn: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian or Poisson noise (one choice per batch; levels and gray per sample), clamped.
    Levels come from ``g``, the noise fields from ``gn`` (default ``g``)."""
    b, gn = x.shape[0], gn or g
    if uniform(g, 0.0, 1.0) < gaussian_prob:
        sigma = _rand(g, b, *sigma_range) / 255.0
        gray = _rand(g, b, 0.0, 1.0) < gray_prob
        out = add_gaussian_noise(x, sigma, gray, gn)
    else:
        scale = _rand(g, b, *poisson_range)
        gray = _rand(g, b, 0.0, 1.0) < gray_prob
        out = add_poisson_noise(x, scale, gray, gn)
    return out.clamp(0, 1)


def random_jpeg(
    x: torch.Tensor, g: torch.Generator, q_range: tuple[float, float], on_device: bool = False
) -> torch.Tensor:
    """JPEG at a per-sample quality uniform in ``q_range``: libjpeg on the CPU (the
    reference), or kornia's tensor codec on ``x``'s device (`on_device`)."""
    q = _rand(g, x.shape[0], *q_range)
    if on_device:
        from tadsr.data.device_jpeg import jpeg_on_device

        return jpeg_on_device(x.clamp(0, 1), q)
    return jpeg_compress(x.clamp(0, 1), q)


def noise_generator(x: torch.Tensor, g: torch.Generator) -> torch.Generator:
    """Where the device path draws its noise: ``g`` itself when ``x`` is on ``g``'s device
    (so on CPU tensors it draws exactly what the reference draws), else a generator on
    ``x``'s device seeded by one draw of ``g`` (no noise field crosses to the GPU)."""
    if x.device == g.device:
        return g
    seed = int(torch.randint(0, 2**62, (), generator=g, device=g.device))
    return torch.Generator(device=x.device).manual_seed(seed)


def _random_resize(
    x: torch.Tensor,
    g: torch.Generator,
    probs: tuple[float, float, float],
    rng: tuple[float, float],
    modes: tuple[str, ...],
    base: tuple[int, int],
) -> torch.Tensor:
    """Up / down / keep with ``probs``; the factor applies to ``base`` (H, W)."""
    kind = choice(g, ("up", "down", "keep"), probs)
    if kind == "up":
        s = uniform(g, 1.0, rng[1])
    elif kind == "down":
        s = uniform(g, rng[0], 1.0)
    else:
        s = 1.0
    mode = choice(g, modes)
    return resize(x, (int(base[0] * s), int(base[1] * s)), mode)


def _check(hr: torch.Tensor, scale: int) -> None:
    if hr.dim() != 4 or hr.shape[1] != 3:
        raise ValueError(f"degradation: expected hr of shape (B,3,H,W), got {tuple(hr.shape)}")
    if not hr.is_floating_point():
        raise ValueError(f"degradation: expected a float tensor in [0,1], got {hr.dtype}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"degradation: H and W ({h}x{w}) must be multiples of scale {scale}")


# --------------------------------------------------------------------------- degradations


class RealESRGANDegradation:
    """Second-order degradation (blur → resize → noise → JPEG, twice; final resize + sinc).

    ``on_device``: the batched tensor path for a GPU batch. Every step runs on ``hr``'s
    device; JPEG is kornia's tensor codec instead of libjpeg and the noise fields are drawn on
    that device (`noise_generator`); all other draws, and so every kernel, size and level,
    are the reference's."""

    def __init__(
        self, config: DegradationConfig | None = None, scale: int = 4, on_device: bool = False
    ) -> None:
        self.config = config or DegradationConfig()
        self.scale = int(scale)
        self.on_device = on_device

    def _kernels(self, g: torch.Generator, spec: KernelSpec, b: int) -> torch.Tensor:
        return torch.stack([random_mixed_kernel(g, spec) for _ in range(b)])

    def _final_sinc(self, g: torch.Generator, b: int) -> torch.Tensor:
        cfg = self.config
        ks = []
        for _ in range(b):
            if uniform(g, 0.0, 1.0) < cfg.final_sinc_prob:
                size = int(choice(g, cfg.final_sinc_sizes))
                omega = uniform(g, math.pi / 3, math.pi)
                ks.append(sinc_kernel(size, omega, pad_to=cfg.final_sinc_pad))
            else:
                ks.append(pulse_kernel(cfg.final_sinc_pad))
        return torch.stack(ks)

    def __call__(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check(hr, self.scale)
        cfg, g, dev = self.config, generator, self.on_device
        b, _, h, w = hr.shape
        gn = noise_generator(hr, g) if dev else g
        # all kernels first, in a fixed order, so the stream of draws is easy to follow
        k1 = self._kernels(g, cfg.kernel1, b)
        k2 = self._kernels(g, cfg.kernel2, b)
        k_final = self._final_sinc(g, b)

        # ---- stage 1
        x = filter2d(hr, k1)
        x = _random_resize(
            x, g, cfg.resize_prob, cfg.resize_range, cfg.resize_modes, (x.shape[-2], x.shape[-1])
        )
        x = random_noise(
            x,
            g,
            cfg.gaussian_noise_prob,
            cfg.noise_range,
            cfg.poisson_scale_range,
            cfg.gray_noise_prob,
            gn,
        )
        x = random_jpeg(x, g, cfg.jpeg_range, dev)

        # ---- stage 2 (with probability second_order_prob)
        base = (h // self.scale, w // self.scale)
        if uniform(g, 0.0, 1.0) < cfg.second_order_prob:
            if uniform(g, 0.0, 1.0) < cfg.second_blur_prob:
                x = filter2d(x, k2)
            x = _random_resize(x, g, cfg.resize_prob2, cfg.resize_range2, cfg.resize_modes, base)
            x = random_noise(
                x,
                g,
                cfg.gaussian_noise_prob2,
                cfg.noise_range2,
                cfg.poisson_scale_range2,
                cfg.gray_noise_prob2,
                gn,
            )

        # ---- final: resize to HR/scale + sinc, and JPEG, in either order
        mode = choice(g, cfg.resize_modes)
        if uniform(g, 0.0, 1.0) < 0.5:
            x = filter2d(resize(x, base, mode), k_final)
            x = random_jpeg(x, g, cfg.jpeg_range2, dev)
        else:
            x = random_jpeg(x, g, cfg.jpeg_range2, dev)
            x = filter2d(resize(x, base, mode), k_final)
        return quantize(x)


class BicubicDegradation:
    """Antialiased bicubic downsampling by ``scale`` (deterministic; the generator is unused)."""

    def __init__(self, scale: int = 4) -> None:
        self.scale = int(scale)

    def __call__(self, hr: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(hr, self.scale)
        size = (hr.shape[-2] // self.scale, hr.shape[-1] // self.scale)
        lr = F.interpolate(hr, size=size, mode="bicubic", align_corners=False, antialias=True)
        return quantize(lr)


class FaceDegradation:
    """GFPGAN-style face degradation, then a bilinear resize to HR/scale.

    Per sample: blur with a 41-tap iso/aniso Gaussian, bilinear downsample by a factor in
    ``downsample_range``, Gaussian noise, JPEG, optional gray (p 0.01). With ``scale=1`` the
    image is resized back to the HR size, as in GFPGAN.
    """

    def __init__(
        self, config: FaceDegradationConfig | None = None, scale: int = 4, on_device: bool = False
    ) -> None:
        self.config = config or FaceDegradationConfig()
        self.scale = int(scale)
        self.on_device = on_device  # as RealESRGANDegradation's

    def __call__(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check(hr, self.scale)
        cfg, g = self.config, generator
        b, _, h, w = hr.shape
        gn = noise_generator(hr, g) if self.on_device else g
        out = []
        for i in range(b):
            kind = choice(g, cfg.kernel_types, cfg.kernel_probs)
            sx = uniform(g, *cfg.sigma)
            if kind == "aniso":
                sy, theta = uniform(g, *cfg.sigma), uniform(g, -math.pi, math.pi)
            else:
                sy, theta = sx, 0.0
            k = gaussian_kernel(cfg.kernel_size, sx, sy, theta)
            x = filter2d(hr[i : i + 1], k)
            s = uniform(g, *cfg.downsample_range)
            x = resize(x, (int(h / s), int(w / s)), "bilinear")
            sigma = _rand(g, 1, *cfg.noise_range) / 255.0
            x = add_gaussian_noise(x, sigma, torch.zeros(1, dtype=torch.bool), gn).clamp(0, 1)
            x = random_jpeg(x, g, cfg.jpeg_range, self.on_device)
            x = resize(x, (h // self.scale, w // self.scale), "bilinear")
            if uniform(g, 0.0, 1.0) < cfg.gray_prob:
                x = rgb_to_gray(x).expand(-1, 3, -1, -1)
            out.append(x)
        return quantize(torch.cat(out))


class LRNoiseDegradation:
    """Antialiased bicubic /scale, then noise, then JPEG, all on the LR grid.

    In the paper's degradation, noise comes after a blur and most of it before the last
    resize; here the LR is sharp and the noise and the 8x8 JPEG blocks sit on its own pixels
    at full strength, the usual case of a photo from a small sensor or a re-compressed web
    image, which the student must learn to clean rather than enlarge.
    """

    def __init__(
        self, config: LRNoiseConfig | None = None, scale: int = 4, on_device: bool = False
    ) -> None:
        self.config = config or LRNoiseConfig()
        self.scale = int(scale)
        self.bicubic = BicubicDegradation(self.scale)
        self.on_device = on_device  # as RealESRGANDegradation's

    def __call__(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg, g = self.config, generator
        x = self.bicubic(hr)
        gn = noise_generator(x, g) if self.on_device else g
        x = random_noise(
            x, g, cfg.gaussian_noise_prob, cfg.noise_range, cfg.poisson_scale_range,
            cfg.gray_noise_prob, gn,
        )  # fmt: skip
        return quantize(random_jpeg(x, g, cfg.jpeg_range, self.on_device))


class MixedDegradation:
    """Each sample of a batch gets one of several degradations, drawn with fixed probabilities.

    A model trained on heavy degradation only learns that all fine structure is noise and wipes
    out the real detail of clean inputs; mixing clean, mild and heavy inputs teaches it when
    detail is real. The draw per sample and each part's own draws all come from the generator
    (parts run in their listed order on their sub-batch), so a batch is a function of the seed.
    """

    def __init__(
        self, parts: list[tuple[str, float]], scale: int = 4, on_device: bool = False
    ) -> None:
        if not parts:
            raise ValueError("a mixed degradation needs at least one part")
        total = sum(p for _, p in parts)
        if any(p < 0 for _, p in parts) or total <= 0:
            raise ValueError(f"mixture probabilities must be >= 0 and not all 0, got {parts}")
        self.scale = int(scale)
        self.names = [n for n, _ in parts]
        self.probs = torch.tensor([p / total for _, p in parts], dtype=torch.float64)
        self.parts = [build_degradation(n, scale, on_device=on_device) for n in self.names]

    def __call__(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check(hr, self.scale)
        u = _rand(generator, hr.shape[0], 0.0, 1.0)
        kind = torch.searchsorted(self.probs.cumsum(0), u, right=True).clamp_max(
            len(self.parts) - 1
        )
        out = hr.new_empty(
            hr.shape[0], hr.shape[1], hr.shape[2] // self.scale, hr.shape[3] // self.scale
        )
        for k, deg in enumerate(self.parts):
            idx = (kind == k).nonzero().flatten().tolist()
            if idx:
                out[idx] = deg(hr[idx], generator)
        return out


#: "mixed": the training input of the bundled models: clean bicubic 50 %, mild 30 %, the
#: paper's 20 % (on whole photos it beat clean 30 / mild 30 / paper 40, see MODEL_CARD.md).
MIXTURES = {"mixed": [("bicubic", 0.5), ("realesrgan_mild", 0.3), ("realesrgan", 0.2)]}
DEGRADATIONS = (
    "realesrgan", "realesrgan_mild", "bicubic", "lr_noise", "lr_noise_heavy", "face", "mixed",
    "NAME:P+NAME:P...",
)  # fmt: skip


def parse_mixture(spec: str) -> list[tuple[str, float]]:
    """``"bicubic:0.3+realesrgan:0.7"`` -> [("bicubic", 0.3), ("realesrgan", 0.7)]."""
    parts = []
    for item in spec.split("+"):
        name, sep, prob = item.partition(":")
        try:
            parts.append((name.strip(), float(prob) if sep else 1.0))
        except ValueError:
            raise ValueError(f"degradation mixture {spec!r}: {prob!r} is not a number") from None
    return parts


def build_degradation(
    name: str,
    scale: int = 4,
    config: DegradationConfig | FaceDegradationConfig | LRNoiseConfig | None = None,
    on_device: bool = False,
) -> Degradation:
    """A degradation by name: "realesrgan" (also "realesrgan_official", "realesrgan_mild"),
    "bicubic", "lr_noise" (also "lr_noise_heavy"), "face", or a mixture: "mixed" or
    "bicubic:0.3+realesrgan:0.7".
    ``on_device``: the batched tensor path (see `RealESRGANDegradation`)."""
    dev = on_device
    if name in MIXTURES or "+" in name or ":" in name:
        return MixedDegradation(MIXTURES.get(name) or parse_mixture(name), scale, dev)
    presets = {"realesrgan": "paper", "realesrgan_mild": "mild",
               "realesrgan_official": "realesrgan_official"}  # fmt: skip
    if name in presets:
        if config is not None and not isinstance(config, DegradationConfig):
            raise TypeError(f"degradation {name!r} takes a DegradationConfig")
        return RealESRGANDegradation(config or PRESETS[presets[name]], scale, dev)
    if name in LR_NOISE_PRESETS:
        if config is not None and not isinstance(config, LRNoiseConfig):
            raise TypeError(f"degradation {name!r} takes an LRNoiseConfig")
        return LRNoiseDegradation(config or LR_NOISE_PRESETS[name], scale, dev)
    if name == "bicubic":
        return BicubicDegradation(scale)
    if name == "face":
        if config is not None and not isinstance(config, FaceDegradationConfig):
            raise TypeError("degradation 'face' takes a FaceDegradationConfig")
        return FaceDegradation(config, scale, dev)
    raise ValueError(f"unknown degradation {name!r}; choose from {', '.join(DEGRADATIONS)}")
