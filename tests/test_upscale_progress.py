"""Upscaler.upscale_picture(on_progress=...): counts network evaluations, can cancel, and
does not change the result."""

from __future__ import annotations

import numpy as np
import pytest
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
    assert len(evaluations) == 3  # the third evaluation reported 2 steps done and stopped
    assert len(pipe.net._forward_pre_hooks) == 1  # only ours: the progress hook is gone
    evaluations.clear()
    up.upscale_picture(picture)  # and the pipeline works on
    assert len(evaluations) == 4 * _count_tiles(40, 40, 16, 4)
    hook.remove()
