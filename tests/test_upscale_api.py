"""Upscaler: PIL and numpy in, same type out; gray, alpha, 16-bit, tiny and odd sizes;
outscale, colour fixes, seeds, tiling through the Upscaler, and a teacher with --steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from _upscale_helpers import LocalPipeline, save_tiny_model, tiny_student
from tadsr import Upscaler
from tadsr.inference.colorfix import adain_color_fix, wavelet_color_fix
from tadsr.inference.upscaler import LUMA_WEIGHTS

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def pipe():
    return tiny_student()


def test_pil_modes_keep_their_type(pipe):
    up = Upscaler(pipe)
    rgb = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    for img, mode in [
        (Image.fromarray(rgb), "RGB"),
        (Image.fromarray(rgb).convert("L"), "L"),
        (Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "RGBA"),
        (Image.fromarray(rgb).convert("LA"), "LA"),
        (Image.fromarray(RNG.integers(0, 65536, (7, 9), dtype=np.uint16)), "I;16"),
        (Image.fromarray(rgb).quantize(8), "RGB"),
    ]:
        out = up(img)
        assert isinstance(out, Image.Image)
        assert out.size == (36, 28) and out.mode == mode, (img.mode, out.mode)


def test_numpy_layouts_and_dtypes(pipe):
    up = Upscaler(pipe)
    for arr in [RNG.integers(0, 256, (5, 6), dtype=np.uint8),
                RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8),
                RNG.integers(0, 65536, (5, 6, 4), dtype=np.uint16),
                RNG.random((5, 6, 1)).astype(np.float32),
                RNG.random((5, 6, 2))]:  # fmt: skip
        out = up(arr)
        assert out.shape == (20, 24) + arr.shape[2:] and out.dtype == arr.dtype
    with pytest.raises(TypeError):
        up("not an image")


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (3, 2), (13, 5)])
def test_tiny_and_odd_sizes(pipe, h, w):
    out = Upscaler(pipe)(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8))
    assert out.shape == (4 * h, 4 * w, 3)


def test_gray_is_the_luma_of_the_rgb_result(pipe):
    gray = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    up = Upscaler(pipe)
    out_gray = up(gray).astype(float)
    out_rgb = up(np.repeat(gray[..., None], 3, axis=2)).astype(float)
    luma = (out_rgb * np.array(LUMA_WEIGHTS)).sum(axis=2)
    assert np.abs(out_gray - luma).max() <= 1.5  # rounding of each side


def test_16bit_keeps_precision(pipe):
    arr = RNG.integers(0, 65536, (6, 6, 3), dtype=np.uint16)
    out16 = Upscaler(pipe)(arr)
    out8 = Upscaler(pipe)((arr // 257).astype(np.uint8))
    assert out16.dtype == np.uint16
    assert len(np.unique(out16 % 257)) > 10  # not 8-bit values scaled up
    assert np.abs(out16 / 65535.0 - out8 / 255.0).mean() < 0.01


def test_alpha_is_resized_separately(pipe):
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255
    rgba = np.dstack([RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8), alpha])
    out = Upscaler(pipe)(rgba)
    assert out.shape == (32, 32, 4)
    assert (out[:, :12, 3] == 0).all() and (out[:, 20:, 3] == 255).all()
    # colour does not depend on alpha
    np.testing.assert_array_equal(out[..., :3], Upscaler(pipe)(rgba[..., :3]))


def test_outscale_any_factor(pipe):
    arr = RNG.integers(0, 256, (10, 7, 3), dtype=np.uint8)
    assert Upscaler(pipe, outscale=2.5)(arr).shape == (25, 18, 3)
    assert Upscaler(pipe, outscale=1)(arr).shape == (10, 7, 3)
    with pytest.raises(ValueError):
        Upscaler(pipe, outscale=0)


def test_a_target_width_keeps_the_aspect_ratio(pipe):
    arr = RNG.integers(0, 256, (10, 7, 3), dtype=np.uint8)
    assert Upscaler(pipe, width=21)(arr).shape == (30, 21, 3)
    for bad in ({"width": 0}, {"width": 14, "outscale": 2}):
        with pytest.raises(ValueError, match="width"):
            Upscaler(pipe, **bad)


def test_seed_determinism(pipe):
    arr = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    a, b = Upscaler(pipe, seed=1)(arr), Upscaler(pipe, seed=1)(arr)
    c = Upscaler(pipe, seed=2)(arr)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 0.5


def test_upscaler_tiling_equals_untiled_for_local_model():
    arr = RNG.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    local = LocalPipeline()
    untiled = Upscaler(local, tile=0)(arr)
    tiled = Upscaler(local, tile=12, tile_overlap=4)(arr)
    assert len(local.calls) > 2
    assert np.abs(untiled.astype(int) - tiled).max() <= 1  # float sums, then rounding


def test_options_are_checked(pipe):
    for bad in [dict(tile=8, tile_overlap=8), dict(tile=-1), dict(color_fix="magic"),
                dict(steps=0), dict(steps=4)]:  # fmt: skip
        with pytest.raises(ValueError):
            Upscaler(pipe, **bad)


def test_color_fixes():
    g = torch.Generator().manual_seed(0)
    lq = torch.rand(1, 3, 16, 16, generator=g) * 0.5 - 0.25
    sr = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    fixed = adain_color_fix(sr, lq)
    torch.testing.assert_close(fixed.mean((-2, -1)), lq.mean((-2, -1)), atol=1e-4, rtol=0)
    torch.testing.assert_close(fixed.std((-2, -1)), lq.std((-2, -1)), atol=1e-3, rtol=0)
    # an SR output with a colour cast plus detail: the fix removes the cast, keeps the detail
    ref = torch.nn.functional.interpolate(lq, size=(64, 64), mode="bicubic")
    detail = 0.1 * torch.randn(1, 3, 64, 64, generator=g)
    cast = torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    wav = wavelet_color_fix(ref + cast + detail, lq)
    assert (wav - ref).mean((-2, -1)).abs().max() < 0.01
    corr = torch.corrcoef(torch.stack([detail.flatten(), (wav - ref).flatten()]))[0, 1]
    assert corr > 0.9


def test_color_fix_through_upscaler(pipe):
    arr = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    base = Upscaler(pipe)(arr).astype(float)
    for fix in ("wavelet", "adain"):
        out = Upscaler(pipe, color_fix=fix)(arr).astype(float)
        assert out.shape == base.shape and np.abs(out - base).mean() > 0.5
        # colours move towards the input's
        assert abs(out.mean() - arr.mean()) <= abs(base.mean() - arr.mean()) + 1.0


def test_teacher_steps_and_from_pretrained(tmp_path):
    path = save_tiny_model(tmp_path / "teacher.safetensors", kind="teacher")
    up = Upscaler.from_pretrained(path, device="cpu", steps=2)
    assert up.pipeline.kind == "teacher"
    out = up(RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8))
    assert out.shape == (16, 20, 3)


def test_tiled_teacher_equals_untiled_with_enough_context():
    """A teacher's per-step noise is cut per tile from fixed blocks, like the prior noise:
    with context covering the image, a tiled 4-step teacher run is the untiled one."""
    import numpy as np
    from PIL import Image

    from tadsr import Upscaler

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    whole = Upscaler.from_pretrained("tadsr-small-teacher", steps=4, tile=0, seed=5)(img)
    tiled = Upscaler.from_pretrained(
        "tadsr-small-teacher", steps=4, tile=16, tile_overlap=4, tile_pad=64, seed=5
    )(img)
    diff = np.abs(np.asarray(whole, dtype=int) - np.asarray(tiled, dtype=int))
    assert diff.max() <= 1
    other = Upscaler.from_pretrained("tadsr-small-teacher", steps=4, tile=0, seed=6)(img)
    assert np.abs(np.asarray(other, dtype=int) - np.asarray(whole, dtype=int)).max() > 10
