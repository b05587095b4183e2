"""Full-reference metrics on the BT.601 Y channel, computed as BasicSR / ResShift do (ResShift's
and TAD-SR's evaluation protocol).

Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B the uint8 values (so Y is on
the 0-255 scale and is not rounded); a border of ``crop_border`` pixels is cropped first.
SSIM (Wang et al. 2004, Eq. 13) uses an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 L)^2,
C2 = (0.03 L)^2 with L = 255, and averages the map over the "valid" region.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2
# Wang, Simoncelli, Bovik 2003 (MS-SSIM), weights of scales 1..5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 (H, W, 3) RGB image on the 0-255 scale, float64, unrounded.

    A 2-D (H, W) image is taken as already being Y and only converted to float64.
    """
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) image, got shape {arr.shape}")
    return arr.astype(np.float64) @ (_Y_WEIGHTS / 255.0) + 16.0


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return y
    if y.shape[0] <= 2 * border or y.shape[1] <= 2 * border:
        raise ValueError(f"image of {y.shape[1]}x{y.shape[0]} is too small to crop {border} px")
    return y[border:-border, border:-border]


def _pair_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(sr) != np.shape(hr):
        raise ValueError(f"image sizes differ: {np.shape(sr)} vs {np.shape(hr)}")
    return _crop(rgb_to_y(sr), crop_border), _crop(rgb_to_y(hr), crop_border)


def psnr_y(sr_uint8: np.ndarray, hr_uint8: np.ndarray, crop_border: int = 4) -> float:
    """PSNR = 10 log10(255^2 / MSE) on Y with the border cropped; inf for identical images."""
    a, b = _pair_y(sr_uint8, hr_uint8, crop_border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable correlation with ``win`` keeping only positions where it fits entirely."""
    r = len(win) // 2
    out = correlate1d(correlate1d(x, win, axis=0, mode="constant"), win, axis=1, mode="constant")
    return out[r:-r, r:-r]


def _ssim_terms(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luminance term l(x, y) and contrast-structure term cs(x, y) maps (Wang 2004 Eq. 6, 9)."""
    win = _gaussian_1d()
    if min(a.shape) < len(win):
        raise ValueError(f"SSIM needs at least 11x11 pixels, got {a.shape[1]}x{a.shape[0]}")
    mu1, mu2 = _filter_valid(a, win), _filter_valid(b, win)
    s11 = _filter_valid(a * a, win) - mu1 * mu1
    s22 = _filter_valid(b * b, win) - mu2 * mu2
    s12 = _filter_valid(a * b, win) - mu1 * mu2
    lum = (2.0 * mu1 * mu2 + _C1) / (mu1 * mu1 + mu2 * mu2 + _C1)
    cs = (2.0 * s12 + _C2) / (s11 + s22 + _C2)
    return lum, cs


def ssim_y(sr_uint8: np.ndarray, hr_uint8: np.ndarray, crop_border: int = 4) -> float:
    """Mean SSIM on Y with the border cropped (BasicSR ``calculate_ssim(test_y_channel=True)``)."""
    a, b = _pair_y(sr_uint8, hr_uint8, crop_border)
    lum, cs = _ssim_terms(a, b)
    return float(np.mean(lum * cs))


def ms_ssim(sr_uint8: np.ndarray, hr_uint8: np.ndarray, crop_border: int = 4) -> float:
    """Multi-scale SSIM on Y (Wang et al. 2003 Eq. 7): prod_j cs_j^w_j, times l_5^w_5.

    Five scales, 2x2 average pooling between scales, the SSIM window and constants above;
    negative scale terms are clamped at 0 (as pytorch-msssim does). Needs the cropped image
    to be at least 176 px on each side (11 px at the coarsest scale).
    """
    a, b = _pair_y(sr_uint8, hr_uint8, crop_border)
    n = len(MS_SSIM_WEIGHTS)
    need = 11 * 2 ** (n - 1)
    if min(a.shape) < need:
        raise ValueError(
            f"MS-SSIM needs at least {need}x{need} pixels after cropping, "
            f"got {a.shape[1]}x{a.shape[0]}"
        )
    value = 1.0
    for j, weight in enumerate(MS_SSIM_WEIGHTS):
        lum, cs = _ssim_terms(a, b)
        term = float(np.mean(cs)) if j < n - 1 else float(np.mean(lum * cs))
        value *= max(term, 0.0) ** weight
        if j < n - 1:
            h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
            a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(value)
