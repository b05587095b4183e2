"""Device, dtype and torchrun rank choice (tadsr.utils.device)."""

from __future__ import annotations

import pytest
import torch

from tadsr.utils.device import DeviceError, dist_rank_world, pick_device, pick_dtype


def test_pick_device_and_dtype():
    assert pick_device("cpu") == torch.device("cpu")
    auto = pick_device("auto")
    assert auto.type in ("cpu", "cuda", "mps")
    with pytest.raises(DeviceError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="not available"):
            pick_device("cuda")
    assert pick_dtype("bf16") is torch.bfloat16 and pick_dtype("fp32") is torch.float32
    with pytest.raises(DeviceError):
        pick_dtype("fp8")


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_dtype_is_bf16_only_on_a_cpu_that_computes_it(monkeypatch, native_bf16):
    import tadsr.utils.device as device

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: native_bf16)
    want = torch.bfloat16 if native_bf16 else torch.float32
    assert pick_dtype("auto") is want and pick_dtype("auto", torch.device("cpu")) is want
    assert pick_dtype("auto", torch.device("cuda")) is torch.float32
    assert pick_dtype("fp32") is torch.float32  # an explicit choice is kept


def test_rank_and_world_from_the_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dist_rank_world() == (0, 1)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert dist_rank_world() == (2, 4)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(DeviceError):
        dist_rank_world()
