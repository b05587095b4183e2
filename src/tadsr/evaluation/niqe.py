"""NIQE (Mittal, Soundararajan, Bovik 2013), following the MATLAB release as BasicSR does.

Steps: Y channel (BT.601, rounded), crop to whole 96x96 blocks; at two scales (the second
one is the MATLAB bicubic x0.5 resize) compute MSCN coefficients (Eq. 1, 7x7 Gaussian,
replicate border, sigma + 1 in the denominator); per block fit an AGGD to the MSCN values
and to the products of neighbours in 4 directions (18 features per scale, Eq. 7-8,
moment matching with a gamma lookup table); fit a Gaussian to the block features (mean
ignoring NaN, covariance over NaN-free rows) and report the distance to the pristine
model (Eq. 10): sqrt((mu_p - mu_d)^T ((S_p + S_d)/2)^+ (mu_p - mu_d)).
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma as gamma_fn

from tadsr.evaluation.fullref import rgb_to_y
from tadsr.evaluation.imresize import imresize

BLOCK = 96
FLAT_TOL = 1e-6  # on the 0-255 scale; real structure is >= ~1e-4 (smallest window weight)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def niqe_params() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu 36, cov 36x36, gaussian window 7x7) of the pristine model (params/PROVENANCE.md)."""
    ref = resources.files("tadsr.evaluation").joinpath("params/niqe_pris_params.npz")
    with ref.open("rb") as fh, np.load(fh) as data:
        mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
        cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
        window = np.asarray(data["gaussian_window"], dtype=np.float64)
    return mu, cov, window


@lru_cache(maxsize=1)
def _gamma_table() -> tuple[np.ndarray, np.ndarray]:
    """Shape grid 0.2:0.001:10 and r(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))."""
    shapes = np.arange(0.2, 10.001, 0.001)
    r = gamma_fn(2.0 / shapes) ** 2 / (gamma_fn(1.0 / shapes) * gamma_fn(3.0 / shapes))
    return shapes, r


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD moment fit of each row of ``x`` (N, n): (alpha, beta_left, beta_right).

    Rows without negative (or positive) samples give NaN scales, as in the reference.
    """
    neg, pos = x < 0, x > 0
    sq = x * x
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt((sq * neg).sum(axis=1) / neg.sum(axis=1))
        right = np.sqrt((sq * pos).sum(axis=1) / pos.sum(axis=1))
        ghat = left / right
        rhat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(sq, axis=1)
        rnorm = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
    shapes, r = _gamma_table()
    # argmin over the table; an all-NaN row picks index 0, like numpy in the reference
    alpha = shapes[np.argmin((r[None, :] - rnorm[:, None]) ** 2, axis=1)]
    ratio = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    return alpha, left * ratio, right * ratio


def _block_features(mscn: np.ndarray, size: int) -> np.ndarray:
    """18 features for each size x size block of an MSCN map: (num_blocks, 18)."""
    nh, nw = mscn.shape[0] // size, mscn.shape[1] // size
    blocks = mscn[: nh * size, : nw * size].reshape(nh, size, nw, size).transpose(2, 0, 1, 3)
    blocks = blocks.reshape(nh * nw, size, size)  # column-major block order, as the reference
    flat = blocks.reshape(len(blocks), -1)
    alpha, bl, br = aggd_fit(flat)
    feats = [alpha, (bl + br) / 2.0]
    for shift in _SHIFTS:
        prod = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(len(blocks), -1)
        alpha, bl, br = aggd_fit(prod)
        mean = (br - bl) * gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha)
        feats += [alpha, mean, bl, br]
    return np.stack(feats, axis=1)


def _mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (Eq. 1), replicate border.

    Differences ``|I - mu|`` below ``FLAT_TOL`` are set to exactly 0: in a flat region they
    are rounding noise, whose signs would otherwise decide the features of flat blocks
    (exact arithmetic gives 0, and so does the float32 reference on such regions).
    """
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
    diff = img - mu
    diff[np.abs(diff) <= FLAT_TOL] = 0.0
    return diff / (sigma + 1.0)


def niqe_y(y: np.ndarray) -> float:
    """NIQE of a 2-D luma image on the 0-255 scale (already rounded, cropped as wanted)."""
    mu_p, cov_p, window = niqe_params()
    h, w = y.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh * nw < 2:
        raise ValueError(
            f"NIQE needs at least two {BLOCK}x{BLOCK} blocks (e.g. 192x96 pixels), got {w}x{h}"
        )
    img = np.asarray(y, dtype=np.float64)[: nh * BLOCK, : nw * BLOCK]
    scale_feats = []
    for scale in (1, 2):
        scale_feats.append(_block_features(_mscn(img, window), BLOCK // scale))
        if scale == 1:
            img = imresize(img / 255.0, 0.5) * 255.0
    feats = np.concatenate(scale_feats, axis=1)
    mu_d = np.nanmean(feats, axis=0)
    clean = feats[~np.isnan(feats).any(axis=1)]
    if len(clean) < 2:
        raise ValueError("NIQE is undefined for this image (too many flat blocks)")
    cov_d = np.cov(clean, rowvar=False)
    diff = mu_p - mu_d
    quality = diff @ np.linalg.pinv((cov_p + cov_d) / 2.0) @ diff
    return float(math.sqrt(quality))


def niqe(img_uint8: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of a uint8 RGB (H, W, 3) or gray (H, W) image; lower is better.

    As BasicSR ``calculate_niqe(convert_to='y')``: Y (BT.601) rounded to integers, then
    ``crop_border`` pixels removed on every side.
    """
    y = np.round(rgb_to_y(img_uint8))
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_y(y)
