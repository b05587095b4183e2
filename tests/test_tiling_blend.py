"""Tiling: spans cover the image, weights add up to one, tiled == untiled for a local model,
and no seam statistic at tile borders for the real (non-local) network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _upscale_helpers import LocalPipeline, tiny_student
from tadsr.inference.tiling import (
    BlockNoise,
    _axis_ramps,
    auto_tile_size,
    blend_ramp,
    run_tiled,
    tile_spans,
    upscale_tiled,
)


@pytest.mark.parametrize(
    "length,tile,overlap",
    [(1, 8, 2), (8, 8, 2), (9, 8, 2), (100, 32, 8), (257, 64, 16), (31, 7, 3)],
)
def test_tile_spans_cover_with_overlap(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == length
    sizes = {b - a for a, b in spans}
    assert len(sizes) == 1 and sizes.pop() <= tile  # one window shape
    for (a0, b0), (a1, _) in zip(spans, spans[1:]):
        assert a0 < a1 and b0 - a1 >= overlap  # overlap at least as asked, no gap
    # the fewest tiles that can do it
    if length > tile:
        assert len(spans) - 1 < (length - overlap) / (tile - overlap)


def test_tile_spans_rejects_bad_sizes():
    with pytest.raises(ValueError):
        tile_spans(10, 4, 4)
    with pytest.raises(ValueError):
        tile_spans(0, 4, 1)


def test_blend_weights_partition_unity():
    spans = tile_spans(100, 32, 8)
    ramps = _axis_ramps(spans, 4)
    total = np.zeros(400)
    for (a, b), r in zip(spans, ramps):
        assert (r > 0).all()
        total[a * 4 : b * 4] += r
    np.testing.assert_allclose(total, np.ones(400), atol=1e-6, rtol=0)
    r = blend_ramp(10, 4, 0)
    assert r[0] < r[1] < r[2] < r[3] < 1 and (r[4:] == 1).all()


def test_auto_tile_never_tiles_small_images():
    assert auto_tile_size("cpu", 64, 300) == 0
    assert auto_tile_size("cpu", 2048, 2048) == 256


def test_block_noise_windows_agree_with_the_whole():
    noise = BlockNoise((1, 5, 150, 70), seed=7, block=32)
    full = noise.full()
    assert full.shape == (1, 5, 150, 70)
    for y0, y1, x0, x1 in [(0, 1, 0, 1), (31, 33, 0, 70), (40, 150, 13, 64), (149, 150, 69, 70)]:
        np.testing.assert_array_equal(noise.window(y0, y1, x0, x1), full[..., y0:y1, x0:x1])
    assert abs(float(full.mean())) < 0.03 and abs(float(full.std()) - 1) < 0.03
    assert not np.array_equal(BlockNoise((1, 5, 150, 70), seed=8, block=32).full(), full)
    # blocks are independent draws, not one block repeated
    assert not np.array_equal(full[..., :32, :32], full[..., 32:64, :32])


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_prior_and_step_noise_are_independent_streams(seed):
    """A teacher's per-step noise must not repeat the prior noise (an old seeding gave block
    (0, 0) and the first step the same numbers: 15-step samples lost 0.8 dB). Prior and step
    noise are now channel groups of one BlockNoise; neighbouring blocks are other draws."""
    c, n = 48, 64
    both = torch.from_numpy(BlockNoise((1, 2 * c, 2 * n, n), seed=seed, block=n).full())
    prior, step = both[:, :c, :n].flatten(), both[:, c:, :n].flatten()
    other = both[:, :c, n:].flatten()
    for a, b in ((prior, step), (prior, other), (step, other)):
        assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.02


def test_tiled_equals_untiled_with_block_noise():
    pipe = LocalPipeline()
    lq = torch.rand(1, 3, 40, 33) * 2 - 1
    noise = BlockNoise(pipe.noise_shape(40, 33), seed=1, block=16)
    full = pipe(lq, noise=torch.from_numpy(noise.full()))
    tiled = upscale_tiled(_local_fn(pipe), lq, scale=4, tile=14, overlap=4, halo=3, noise=noise)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=0)


def _local_fn(pipe, scale=4):
    # BlockNoise windows are numpy arrays (drawn on the host for every backend)
    def fn(window, noise):
        return pipe(window, noise=None if noise is None else torch.as_tensor(noise))

    return fn


@pytest.mark.parametrize("h,w,tile,overlap", [(37, 50, 16, 4), (20, 20, 9, 2), (5, 64, 12, 0)])
def test_tiled_equals_untiled_for_local_model(h, w, tile, overlap):
    pipe = LocalPipeline()
    g = torch.Generator().manual_seed(1)
    lq = torch.rand(1, 3, h, w, generator=g) * 2 - 1
    noise = torch.randn(pipe.noise_shape(h, w), generator=g)
    full = pipe(lq, noise=noise)
    pipe.calls.clear()
    tiled = upscale_tiled(_local_fn(pipe), lq, scale=4, tile=tile, overlap=overlap,
                          halo=pipe.receptive_halo(), noise=noise)  # fmt: skip
    assert len(pipe.calls) > 1  # it really tiled
    assert max(max(c) for c in pipe.calls) <= tile + 2 * pipe.receptive_halo()
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=0)


def test_tiled_without_context_differs_so_the_test_can_fail():
    pipe = LocalPipeline()
    lq = torch.rand(1, 3, 24, 24) * 2 - 1
    noise = torch.randn(pipe.noise_shape(24, 24))
    full = pipe(lq, noise=noise)
    tiled = upscale_tiled(_local_fn(pipe), lq, scale=4, tile=8, overlap=0, halo=0, noise=noise)
    assert (tiled - full).abs().max() > 1e-3


def test_rows_reach_sink_in_order_and_once():
    pipe = LocalPipeline()
    lq = torch.rand(1, 3, 30, 11) * 2 - 1
    rows_seen = []
    n = run_tiled(_local_fn(pipe), lq, scale=4, tile=8, overlap=2, halo=3,
                  noise=torch.randn(1, 3, 30, 11),
                  sink=lambda row, rows: rows_seen.append((row, rows.shape[1])))  # fmt: skip
    assert n == len(tile_spans(30, 8, 2)) * len(tile_spans(11, 8, 2))
    starts = [r for r, _ in rows_seen]
    assert starts == sorted(starts) and starts[0] == 0
    assert sum(k for _, k in rows_seen) == 120
    assert len(rows_seen) == len(tile_spans(30, 8, 2))  # a band per tile row, streamed


def _seam_score(tiled: torch.Tensor, untiled: torch.Tensor, spans, scale: int = 4) -> float:
    """Largest mean |column jump| of the tiling error near a tile edge, over its mean anywhere.

    E = tiled - untiled; a seam is a jump of E where one tile's contribution starts or stops.
    """
    e = tiled - untiled
    d = (e[..., 1:] - e[..., :-1]).abs().mean(dim=(0, 1, 2))  # d[i]: between columns i, i+1
    edges = {a * scale for a, _ in spans[1:]} | {b * scale for _, b in spans[:-1]}
    near = [float(d[max(0, c - 5) : c + 4].mean()) for c in sorted(edges)]
    return max(near) / float(d.mean())


def test_no_seam_statistic_with_real_network():
    pipe = tiny_student()
    h, w, tile = 16, 48, 16
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    lq = torch.stack([0.6 * xx, 0.5 * yy, 0.3 * xx * yy])[None]
    noise = torch.randn(pipe.noise_shape(h, w), generator=g)

    def fn(window, nz):
        return pipe(window, noise=nz)

    untiled = pipe(lq, noise=noise)
    blended = upscale_tiled(fn, lq, scale=4, tile=tile, overlap=8, halo=8, noise=noise)
    hard = upscale_tiled(fn, lq, scale=4, tile=tile, overlap=0, halo=0, noise=noise)
    assert blended.shape == untiled.shape == (1, 3, 4 * h, 4 * w)
    hard_score = _seam_score(hard, untiled, tile_spans(w, tile, 0))
    blend_score = _seam_score(blended, untiled, tile_spans(w, tile, 8))
    assert hard_score > 2.5, hard_score  # hard cuts leave seams the statistic sees
    assert blend_score < 2.0, blend_score
    # blended stays closer to the untiled output (GroupNorm makes this net non-local)
    assert (blended - untiled).abs().mean() < 0.5 * (hard - untiled).abs().mean()
