"""Blur kernels of the Real-ESRGAN degradation model (Wang et al. 2021, Sec. 3.1), in torch.

All kernels are built in float64 on the CPU from parameters drawn with a ``torch.Generator``,
normalised to sum 1, and zero-padded to a fixed odd size so that a batch of per-sample
kernels can be applied with one grouped convolution (:func:`filter2d`).

- Gaussian (Eq. 2): k(x) ∝ exp(-½ xᵀ Σ⁻¹ x), Σ = R(θ) diag(σ₁², σ₂²) R(θ)ᵀ
- generalised Gaussian (Eq. 3): k(x) ∝ exp(-½ (xᵀ Σ⁻¹ x)^β)
- plateau: k(x) ∝ 1 / (1 + (xᵀ Σ⁻¹ x)^β)
- 2-D sinc (Eq. 4): k(r) = ω_c J₁(ω_c r) / (2π r), k(0) = ω_c² / (4π)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    """One float uniform in [lo, hi) from ``g`` (drawn on the generator's device)."""
    return lo + (hi - lo) * float(torch.rand((), generator=g, device=g.device, dtype=torch.float64))


def choice(g: torch.Generator, options: list | tuple, probs: list | tuple | None = None):
    """One element of ``options`` (weighted by ``probs``) using a single uniform draw."""
    u = uniform(g, 0.0, 1.0)
    if probs is None:
        probs = [1.0] * len(options)
    total = float(sum(probs))
    acc = 0.0
    for opt, p in zip(options, probs):
        acc += p / total
        if u < acc:
            return opt
    return options[-1]


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """xᵀ Σ⁻¹ x on a size×size grid, Σ = R diag(σx², σy²) Rᵀ (Eq. 2)."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinates in the rotated frame
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0
) -> torch.Tensor:
    """Normalised (an)isotropic Gaussian kernel (Eq. 2)."""
    q = _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    k = torch.exp(-0.5 * q)
    return k / k.sum()


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> torch.Tensor:
    """Normalised generalised Gaussian kernel exp(-½ (xᵀΣ⁻¹x)^β) (Eq. 3)."""
    k = torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta).pow(beta))
    return k / k.sum()


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> torch.Tensor:
    """Normalised plateau kernel 1 / (1 + (xᵀΣ⁻¹x)^β)."""
    k = 1.0 / (1.0 + _quadratic_form(size, sigma_x, sigma_y, theta).pow(beta))
    return k / k.sum()


def sinc_kernel(size: int, omega_c: float, pad_to: int = 0) -> torch.Tensor:
    """Normalised circular low-pass (2-D sinc) kernel with cutoff ``omega_c`` (Eq. 4)."""
    if size % 2 != 1:
        raise ValueError(f"sinc kernel size must be odd, got {size}")
    xx, yy = _grid(size)
    r = torch.sqrt(xx**2 + yy**2)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    k = omega_c * torch.special.bessel_j1(omega_c * safe) / (2 * math.pi * safe)
    k = torch.where(r == 0, torch.full_like(r, omega_c**2 / (4 * math.pi)), k)
    k = k / k.sum()
    return pad_kernel(k, pad_to) if pad_to else k


def pad_kernel(k: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square odd kernel to ``size`` (centred)."""
    p = (size - k.shape[-1]) // 2
    if p < 0:
        raise ValueError(f"kernel of size {k.shape[-1]} does not fit in {size}")
    return F.pad(k, (p, p, p, p)) if p else k


def pulse_kernel(size: int) -> torch.Tensor:
    """The identity kernel (a centred delta)."""
    k = torch.zeros(size, size, dtype=torch.float64)
    k[size // 2, size // 2] = 1.0
    return k


def _beta(g: torch.Generator, lo: float, hi: float) -> float:
    """β below or above 1 with equal probability (Real-ESRGAN's shape sampling)."""
    if uniform(g, 0.0, 1.0) < 0.5:
        return uniform(g, lo, min(1.0, hi)) if lo < 1 else lo
    return uniform(g, max(1.0, lo), hi)


@dataclass(frozen=True)
class KernelSpec:
    """Distribution of one blur kernel (one stage of the Real-ESRGAN model)."""

    sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    types: tuple[str, ...] = KERNEL_TYPES
    probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sigma: tuple[float, float] = (0.2, 3.0)
    beta_g: tuple[float, float] = (0.5, 4.0)
    beta_p: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1
    pad_to: int = 21


def random_mixed_kernel(g: torch.Generator, spec: KernelSpec) -> torch.Tensor:
    """One kernel drawn from ``spec`` (sinc with ``spec.sinc_prob``), padded to ``pad_to``."""
    size = int(choice(g, spec.sizes))
    if uniform(g, 0.0, 1.0) < spec.sinc_prob:
        lo = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, uniform(g, lo, math.pi), pad_to=spec.pad_to)
    kind = choice(g, spec.types, spec.probs)
    sx = uniform(g, *spec.sigma)
    if kind.endswith("aniso"):
        sy = uniform(g, *spec.sigma)
        theta = uniform(g, -math.pi, math.pi)
    else:
        sy, theta = sx, 0.0
    if kind.startswith("generalized"):
        k = generalized_gaussian_kernel(size, sx, sy, theta, _beta(g, *spec.beta_g))
    elif kind.startswith("plateau"):
        k = plateau_kernel(size, sx, sy, theta, _beta(g, *spec.beta_p))
    else:
        k = gaussian_kernel(size, sx, sy, theta)
    return pad_kernel(k, spec.pad_to)


FFT_ABOVE = 25


def _support_radius(k: torch.Tensor) -> int:
    """Radius of the smallest centred square holding every non-zero tap of ``k`` (k×k)."""
    size = k.shape[-1]
    c = size // 2
    nz = torch.nonzero(k)
    if nz.numel() == 0:
        return 0
    return int((nz - c).abs().max())


def _filter2d_direct(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    p = k // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    xp = F.pad(x, (p, p, p, p), mode=mode)
    weight = kernels.to(device=x.device, dtype=x.dtype)
    weight = weight[:, None].expand(b, c, k, k).reshape(b * c, 1, k, k).contiguous()
    out = F.conv2d(xp.reshape(1, b * c, h + 2 * p, w + 2 * p), weight, groups=b * c)
    return out.view(b, c, h, w)


def filter2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-sample blur: ``x`` (B,C,H,W), ``kernels`` (B,k,k) or (k,k); reflect padding.

    Taps below 1e-12 are set to zero (denormals are very slow on CPUs) and the zero border
    of each kernel is trimmed (a 7-tap kernel padded to 21 costs 49 taps, not 441);
    samples whose kernels have the same support share one grouped convolution. Kernels
    larger than ``FFT_ABOVE`` taps go through :func:`filter2d_fft`
    (same result to ~1e-6, much faster).
    """
    b = x.shape[0]
    if kernels.dim() == 2:
        kernels = kernels.expand(b, -1, -1)
    if kernels.shape[0] != b:
        raise ValueError(f"filter2d: {kernels.shape[0]} kernels for a batch of {b}")
    kernels = kernels.detach().cpu()
    # taps below 1e-12 are negligible in float32 and would be denormals: very slow on CPUs
    kernels = torch.where(kernels.abs() < 1e-12, torch.zeros_like(kernels), kernels)
    c = kernels.shape[-1] // 2
    radii = [_support_radius(k) for k in kernels]
    out = torch.empty_like(x)
    for r in sorted(set(radii)):
        idx = [i for i, ri in enumerate(radii) if ri == r]
        ks = kernels[idx][:, c - r : c + r + 1, c - r : c + r + 1]
        xs = x[idx] if len(idx) < b else x
        if 2 * r + 1 > FFT_ABOVE:
            ys = filter2d_fft(xs, ks)
        else:
            ys = _filter2d_direct(xs, ks)
        if len(idx) == b:
            return ys
        out[idx] = ys
    return out


def _fft_size(n: int) -> int:
    """The smallest m >= n whose only prime factors are 2, 3 and 5."""
    while True:
        m = n
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 1


def filter2d_fft(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Same as :func:`filter2d` (for point-symmetric kernels) by FFT: faster for big kernels."""
    b, c, h, w = x.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(b, -1, -1)
    k = kernels.shape[-1]
    p = k // 2
    mode = "reflect" if p < min(h, w) else "replicate"
    xp = F.pad(x, (p, p, p, p), mode=mode)
    fh, fw = _fft_size(h + 2 * p), _fft_size(w + 2 * p)
    kk = torch.zeros(b, fh, fw, dtype=x.dtype, device=x.device)
    kk[:, :k, :k] = kernels.to(device=x.device, dtype=x.dtype)
    kk = torch.roll(kk, shifts=(-p, -p), dims=(1, 2))  # kernel centre at the origin
    spec = torch.fft.rfft2(xp, s=(fh, fw)) * torch.fft.rfft2(kk)[:, None]
    y = torch.fft.irfft2(spec, s=(fh, fw))
    return y[..., p : p + h, p : p + w].contiguous()
