"""Degradation: determinism, shapes, 8-bit grid, blur, JPEG blocks, noise variance, face."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tadsr.data.degradation import (
    PRESETS,
    BicubicDegradation,
    DegradationConfig,
    FaceDegradationConfig,
    LRNoiseConfig,
    add_gaussian_noise,
    add_poisson_noise,
    build_degradation,
)
from tadsr.data.jpeg import jpeg_compress
from tadsr.data.kernels import (
    KernelSpec,
    filter2d,
    filter2d_fft,
    gaussian_kernel,
    generalized_gaussian_kernel,
    plateau_kernel,
    random_mixed_kernel,
    sinc_kernel,
)


@pytest.fixture(scope="module")
def hr(photo) -> torch.Tensor:
    x = torch.from_numpy(photo[100:228, 150:278].copy()).permute(2, 0, 1).float() / 255
    return torch.stack([x, x.flip(-1)])  # (2,3,128,128)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _highfreq_energy(x: torch.Tensor) -> float:
    f = torch.fft.fftshift(torch.fft.fft2(x.double()), dim=(-2, -1)).abs() ** 2
    h, w = x.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    mask = (yy**2 + xx**2) > (min(h, w) / 4) ** 2
    return float(f[..., mask].sum())


@pytest.mark.parametrize(
    "name", ["realesrgan", "realesrgan_official", "bicubic", "lr_noise", "lr_noise_heavy", "face"]
)
def test_deterministic_shape_range_grid(hr, name):
    deg = build_degradation(name)
    a, b = deg(hr, _gen(7)), deg(hr, _gen(7))
    assert a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.allclose(a * 255, (a * 255).round(), atol=1e-4)
    if name != "bicubic":
        assert not torch.equal(a, deg(hr, _gen(8)))


def test_realesrgan_varies_and_keeps_content(hr):
    deg = build_degradation("realesrgan")
    ref = F.interpolate(hr, size=(32, 32), mode="area")
    outs = [deg(hr, _gen(s)) for s in range(6)]
    # different seeds give different degradations, all still resembling the image
    assert len({float(o.mean()) for o in outs}) > 3
    for o in outs:
        assert float((o - ref).abs().mean()) < 0.15


def test_second_order_prob_is_explicit():
    assert PRESETS["paper"].second_order_prob == 0.5
    assert PRESETS["realesrgan_official"].second_order_prob == 1.0
    cfg = DegradationConfig()
    assert cfg.kernel1.sigma == (0.2, 3.0) and cfg.kernel2.sigma == (0.2, 1.5)
    assert cfg.resize_prob == (0.2, 0.7, 0.1) and cfg.resize_range == (0.15, 1.5)
    assert cfg.jpeg_range == (30.0, 95.0) and cfg.final_sinc_prob == 0.8
    assert "kernel1" in cfg.to_dict()


def test_bad_input_and_name(hr):
    with pytest.raises(ValueError, match="multiples of scale"):
        build_degradation("realesrgan")(hr[..., :126, :126], _gen(0))
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        build_degradation("bicubic")(hr[0], _gen(0))
    with pytest.raises(ValueError, match="unknown degradation"):
        build_degradation("nope")
    # a config of the other family is refused when built, not at the first batch
    with pytest.raises(TypeError, match="takes a DegradationConfig"):
        build_degradation("realesrgan", config=FaceDegradationConfig())
    with pytest.raises(TypeError, match="takes a FaceDegradationConfig"):
        build_degradation("face", config=DegradationConfig())


def test_bicubic_matches_antialiased_interpolate(hr):
    lr = BicubicDegradation(4)(hr, None)
    ref = F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
    assert (lr - ref).abs().max() <= 0.5 / 255 + 1e-6


def test_lr_noise_puts_noise_then_jpeg_on_the_sharp_lr_grid(hr):
    """lr_noise = JPEG(bicubic /4 + noise): without noise it is libjpeg's round trip of the
    bicubic LR at the drawn quality; with gray noise of sigma 12 and a near-lossless JPEG (its
    4:2:0 chroma would average colour noise) the residual against the bicubic LR has that
    spread, the same in every channel."""
    from tadsr.data.degradation import LRNoiseDegradation

    clean = BicubicDegradation(4)(hr)
    no_noise = LRNoiseConfig(gaussian_noise_prob=1.0, noise_range=(0.0, 0.0), jpeg_range=(40, 40))
    got = build_degradation("lr_noise", config=no_noise)(hr, _gen(0))
    assert torch.equal(got, jpeg_compress(clean, 40.0))
    noisy = LRNoiseConfig(
        gaussian_noise_prob=1.0, noise_range=(12.0, 12.0), gray_noise_prob=1.0,
        jpeg_range=(100, 100),
    )  # fmt: skip
    res = (LRNoiseDegradation(noisy)(hr, _gen(1)) - clean) * 255
    assert res.std().item() == pytest.approx(12.0, rel=0.1)
    r, gch = res[:, 0].flatten(), res[:, 1].flatten()
    assert torch.corrcoef(torch.stack([r, gch]))[0, 1].item() > 0.9
    with pytest.raises(TypeError, match="takes an LRNoiseConfig"):
        build_degradation("lr_noise", config=DegradationConfig())


def test_lr_noise_heavy_draws_only_from_the_heavy_end(hr):
    """lr_noise_heavy: noise sigma >= 8 before a JPEG of quality <= 65, so on every seed its
    LR is further from the clean bicubic LR than the lightest JPEG it allows (65, no noise),
    and the plain lr_noise preset, which reaches sigma 2 and JPEG 95, is not always."""
    clean = BicubicDegradation(4)(hr)
    floor = (jpeg_compress(clean, 65.0) - clean).pow(2).mean().sqrt().item()

    def rms(name: str, seed: int) -> float:
        lr = build_degradation(name)(hr[:1], _gen(seed))
        return (lr - clean[:1]).pow(2).mean().sqrt().item()

    heavy = [rms("lr_noise_heavy", s) for s in range(8)]
    light = [rms("lr_noise", s) for s in range(8)]
    assert min(heavy) > floor
    assert min(light) < floor < max(light)


def test_face_pipeline_runs(hr):
    deg = build_degradation("face")
    lr = deg(hr, _gen(3))
    assert lr.shape == (2, 3, 32, 32) and torch.isfinite(lr).all()
    same = build_degradation("face", scale=1)(hr, _gen(3))
    assert same.shape == hr.shape


def test_kernels_normalised_and_padded():
    g = _gen(0)
    spec = KernelSpec()
    for _ in range(30):
        k = random_mixed_kernel(g, spec)
        assert k.shape == (21, 21)
        assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-9)
        assert torch.allclose(k, k.flip(0).flip(1), atol=1e-12)  # point symmetric
    for k in (
        gaussian_kernel(21, 2.0, 1.0, 0.5),
        generalized_gaussian_kernel(21, 2.0, 1.0, 0.5, 0.7),
        plateau_kernel(21, 2.0, 1.0, 0.5, 1.5),
        sinc_kernel(13, math.pi / 3, pad_to=21),
    ):
        assert k.shape == (21, 21) and math.isclose(float(k.sum()), 1.0, rel_tol=1e-9)
        assert int(k.argmax()) == 21 * 10 + 10  # peak at the centre


def test_anisotropic_gaussian_is_rotated():
    k = gaussian_kernel(21, 4.0, 1.0, 0.0)
    # wide along x, narrow along y
    assert float(k[10, 14]) > 10 * float(k[14, 10])
    k90 = gaussian_kernel(21, 4.0, 1.0, math.pi / 2)
    assert torch.allclose(k90, k.T, atol=1e-12)


def test_blur_lowers_high_frequency_energy():
    x = torch.rand(2, 3, 64, 64, generator=_gen(1))
    for k in (gaussian_kernel(21, 2.0), sinc_kernel(21, math.pi / 4)):
        y = filter2d(x, k.float())
        assert _highfreq_energy(y) < 0.2 * _highfreq_energy(x)
    # per-sample kernels: a pulse leaves its sample untouched, a Gaussian changes the other
    pulse = torch.zeros(21, 21, dtype=torch.float64)
    pulse[10, 10] = 1
    y = filter2d(x, torch.stack([pulse, gaussian_kernel(21, 2.0)]).float())
    assert torch.allclose(y[0], x[0], atol=1e-6) and not torch.allclose(y[1], x[1], atol=1e-2)


def test_fft_filter_matches_direct_convolution():
    x = torch.rand(2, 3, 40, 48, generator=_gen(2))
    ks = torch.stack([gaussian_kernel(41, 6.0, 2.0, 0.4), sinc_kernel(41, 1.0)]).float()
    direct = filter2d(x, ks[:, 10:31, 10:31].contiguous())  # 21 taps: grouped conv
    fft = filter2d_fft(x, ks[:, 10:31, 10:31].contiguous())
    assert torch.allclose(direct, fft, atol=1e-5)
    assert filter2d(x, ks).shape == x.shape  # 41 taps go through the FFT


def test_jpeg_low_quality_makes_8x8_blocks(photo):
    x = torch.from_numpy(photo[:256, 128:384].copy()).permute(2, 0, 1)[None].float() / 255
    y = jpeg_compress(x, 10)
    d = (y[..., :, 1:] - y[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # per column boundary
    at_block = d[7::8].mean()
    inside = torch.cat([d[i::8] for i in range(7)]).mean()
    assert at_block > 1.3 * inside
    # high quality keeps the image close; low quality does not
    assert (jpeg_compress(x, 95) - x).abs().mean() < (y - x).abs().mean()


def test_jpeg_per_sample_quality(hr):
    y = jpeg_compress(hr, torch.tensor([10.0, 95.0]))
    err = (y - hr).abs().mean(dim=(1, 2, 3))
    assert err[0] > err[1]
    with pytest.raises(ValueError):
        jpeg_compress(hr, [50.0])


def test_gaussian_noise_has_requested_variance():
    x = torch.full((2, 3, 128, 128), 0.5)
    sigma = torch.tensor([10.0, 20.0]) / 255
    gray = torch.tensor([False, True])
    y = add_gaussian_noise(x, sigma, gray, _gen(0)) - x
    std = y.std(dim=(1, 2, 3))
    assert torch.allclose(std, sigma, rtol=0.03)
    assert torch.equal(y[1, 0], y[1, 2])  # gray noise: same in every channel
    assert not torch.equal(y[0, 0], y[0, 2])
    assert abs(float(y.mean())) < 1e-3


def test_poisson_noise_grows_with_brightness():
    x = torch.cat([torch.full((1, 3, 64, 64), 0.1), torch.full((1, 3, 64, 64), 0.9)])
    # constant images: 1 distinct value -> photon count 2, noise var = x / 2 * scale^2
    scale = torch.tensor([1.0, 1.0])
    y = add_poisson_noise(x, scale, torch.tensor([False, False]), _gen(0)) - x
    var = y.var(dim=(1, 2, 3))
    assert torch.allclose(var, torch.tensor([0.05, 0.45]), rtol=0.1)


def test_float64_input_gives_nearly_the_same_result(hr):
    deg = build_degradation("realesrgan")
    a = deg(hr, _gen(5))
    b = deg(hr.double(), _gen(5)).float()
    # same random draws; only rounding differs (JPEG can amplify a 1-level difference)
    assert (a - b).abs().mean() < 0.5 / 255 and (a - b).abs().max() < 0.05
    assert np.isfinite(b.numpy()).all()
