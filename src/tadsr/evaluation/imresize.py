"""MATLAB-style bicubic ``imresize`` (antialiased when shrinking), in numpy.

MATLAB resizes each axis with a matrix: output sample k sits at input coordinate
``u = k / s + 0.5 (1 - 1/s)`` (1-based), and takes the Keys cubic kernel (a = -0.5),
stretched by ``1/s`` when shrinking with antialiasing, over the ``ceil(width) + 2`` nearest
input samples; each row is normalised to sum 1 and out-of-range indices are mirrored
(symmetric padding, edge sample repeated). NIQE and BRISQUE depend on this filter.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Dense (out_len, in_len) matrix M with ``resized = M @ signal`` along one axis."""
    kernel_width = 4.0
    shrink_aa = scale < 1 and antialias
    if shrink_aa:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    weights = scale * _cubic(dist * scale) if shrink_aa else _cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # symmetric mirroring: 1..n, n..1, repeated
    period = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    cols = period[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(mat, (rows, cols.ravel()), weights.ravel())
    return mat


def imresize(img: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Bicubic resize of a 2-D (H, W) or (H, W, C) float array by ``scale``, as MATLAB.

    The output size is ``ceil(H * scale) x ceil(W * scale)``; values are not rounded or
    clipped.
    """
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(f"imresize expects a (H, W) or (H, W, C) array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    mh = resize_matrix(h, out_h, float(scale), antialias)
    mw = resize_matrix(w, out_w, float(scale), antialias)
    if arr.ndim == 2:
        return mh @ arr @ mw.T
    rows = (mh @ arr.reshape(h, -1)).reshape(out_h, w, -1)  # (out_h, w, c)
    return mw @ rows  # (out_w, w) @ (out_h, w, c) -> (out_h, out_w, c)
