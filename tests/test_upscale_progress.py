"""Upscaler.upscale_picture(on_progress=...): counts network evaluations, can cancel, and
does not change the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests._upscale_helpers import tiny_student

from tadsr.inference.imageio import Picture
from tadsr.inference.upscaler import Upscaler, _count_tiles


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def picture(photo) -> Picture:
    return Picture(np.ascontiguousarray(photo[100:140, 180:220]))


@pytest.mark.parametrize("kind,steps,tile", [("student", None, 16), ("teacher", 3, 24)])
def test_progress_counts_every_evaluation_and_keeps_the_result(picture, kind, steps, tile):
    up = Upscaler(tiny_student(kind=kind), tile=tile, tile_overlap=4, steps=steps)
    plain = up.upscale_picture(picture)
    calls: list[tuple[int, int]] = []
    out = up.upscale_picture(picture, on_progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(out.color, plain.color)
    n_tiles = _count_tiles(40, 40, tile, 4)
    total = n_tiles * (steps or 1)
    assert n_tiles > 1
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    done = [d for d, _ in calls]
    assert done == sorted(done) and set(done) == set(range(total + 1))
    assert {t for _, t in calls} == {total}


def test_an_exception_from_on_progress_stops_the_run(picture):
    pipe = tiny_student(kind="teacher")
    up = Upscaler(pipe, tile=16, tile_overlap=4, steps=4)
    evaluations = []
    hook = pipe.net.register_forward_pre_hook(lambda *_: evaluations.append(1))

    def cancel(done, _total):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        up.upscale_picture(picture, on_progress=cancel)
    assert len(evaluations) == 2  # the sampler's callback after the second step stopped it
    assert len(pipe.net._forward_pre_hooks) == 1  # only ours: progress hooks nothing
    evaluations.clear()
    up.upscale_picture(picture)  # and the pipeline works on
    assert len(evaluations) == 4 * _count_tiles(40, 40, 16, 4)
    hook.remove()


def test_the_sampler_callback_sees_every_step_and_can_cancel():
    """callback(i, x, x0_hat) after each step of every sampler, with the estimate the step
    used; raising in it stops the sampling there."""
    from tadsr.diffusion import (
        Denoiser,
        sample_ancestral,
        sample_deterministic,
        sample_one_step,
    )

    pipe = tiny_student(kind="teacher")
    process = pipe.process.respaced(4)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 48, 8, 8, generator=g)
    lq = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(y.shape, generator=g)
    calls: list[int] = []
    denoiser = Denoiser(lambda x, t, c: (calls.append(1), pipe.net(x, t, c))[1], process)
    for sampler, n in ((sample_ancestral, 4), (sample_deterministic, 4), (sample_one_step, 1)):
        seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        kw = {"generator": torch.Generator().manual_seed(1)} if sampler is sample_ancestral else {}
        out = sampler(denoiser, y, lq, noise=eps, callback=lambda *a: seen.append(a), **kw)  # noqa: B023
        assert [i for i, _, _ in seen] == list(range(n))
        assert torch.equal(seen[-1][1], out)  # the last step's state is the result
        for _i, _x, x0 in seen:  # a sensible estimate: finite, of the latent's shape
            assert x0.shape == y.shape and bool(torch.isfinite(x0).all())
        # the final x0 estimate is the sample's own
        assert torch.allclose(seen[-1][2], out, atol=1e-5) or sampler is sample_ancestral
        if sampler is not sample_one_step:  # the estimate moves towards the sample
            errs = [float((x0 - out).abs().mean()) for _, _, x0 in seen]
            assert errs[-1] < errs[0]
        calls.clear()

        def stop(i, _x, _x0, half=n // 2):
            if i == half:
                raise Stop

        with pytest.raises(Stop):
            sampler(denoiser, y, lq, noise=eps, callback=stop, **kw)
        assert len(calls) == n // 2 + 1  # no evaluation after the cancelling step
        calls.clear()
