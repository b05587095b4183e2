"""SwinUNet against the official UNetModelSwin fixtures (shared/conformance)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from tadsr.nets.blocks import timestep_embedding
from tadsr.nets.unet import UNET_PRESETS, SwinUNet, infer_unet_config

TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets gain nothing from 2 threads; on a loaded 2-core box OpenMP spinning made
    the training test ~40x slower with 2 threads, so these tests run on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _load(conformance_dir, name):
    sd = load_file(str(conformance_dir / f"{name}.safetensors"))
    io = load_file(str(conformance_dir / f"{name}.io.safetensors"))
    meta = json.loads((conformance_dir / f"{name}.json").read_text())
    return sd, io, meta


@pytest.fixture(scope="module")
def sr_small(conformance_dir):
    sd, io, meta = _load(conformance_dir, "unet_sr_small")
    net = SwinUNet(infer_unet_config(sd))
    net.load_state_dict(sd, strict=True)
    return net.eval(), sd, io, meta


def test_sr_small_layout_and_config(sr_small):
    net, sd, _, meta = sr_small
    assert net.cfg == UNET_PRESETS["sr_small_fixture"]
    assert list(net.state_dict()) == [e["key"] for e in meta["state_dict_keys"]]
    assert net.num_parameters() == meta["num_parameters"]
    # buffers built by our constructor equal the official ones (mask quirk included)
    fresh = SwinUNet(net.cfg).state_dict()
    bufs = [k for k in sd if k.endswith(("attn_mask", "relative_position_index"))]
    assert len(bufs) == 18 + 6  # 9 layers x 2 index buffers, 6 shifted blocks
    for k in bufs:
        assert torch.equal(fresh[k], sd[k]), k
        assert fresh[k].dtype == sd[k].dtype


def test_sr_small_outputs(sr_small):
    net, _, io, _ = sr_small
    with torch.no_grad():
        assert_close(timestep_embedding(io["timesteps"], 32), io["temb_sinusoid"], **TOL)
        assert_close(net.time_embed(io["temb_sinusoid"]), io["temb"], **TOL)
        assert_close(net.input_blocks[7][1](io["swin_in"]), io["swin_out"], **TOL)
        assert_close(net(io["x"], io["timesteps"], io["lq"]), io["out"], **TOL)
        # non-square map of another size than image_size: run-time mask
        assert_close(net(io["x_b"], io["timesteps_b"], io["lq_b"]), io["out_b"], **TOL)


def test_stored_mask_is_not_used(sr_small):
    """Official forward recomputes the mask; overwriting the stored buffers changes nothing."""
    net, sd, io, _ = sr_small
    other = SwinUNet(net.cfg).eval()
    zeroed = {k: (torch.zeros_like(v) if k.endswith("attn_mask") else v) for k, v in sd.items()}
    other.load_state_dict(zeroed, strict=True)
    with torch.no_grad():
        assert_close(other(io["x"], io["timesteps"], io["lq"]), io["out"], **TOL)


def test_face_small_outputs(conformance_dir):
    sd, io, meta = _load(conformance_dir, "unet_face_small")
    cfg = infer_unet_config(sd)
    assert cfg == UNET_PRESETS["face_small_fixture"]
    assert cfg.lq_size == 512 and cfg.feature_extractor_stages == 3
    net = SwinUNet(cfg)
    assert list(net.state_dict()) == [e["key"] for e in meta["state_dict_keys"]]
    net.load_state_dict(sd, strict=True)
    net.eval()
    with torch.no_grad():
        assert_close(net.feature_extractor(io["fe_in"]), io["fe_out"], **TOL)
        assert_close(net(io["x"], io["timesteps"], io["lq"]), io["out"], **TOL)


@pytest.mark.parametrize(
    ("preset", "entry"), [("sr", "resshift_sr_unet"), ("face", "resshift_face_unet")]
)
def test_full_size_layout(conformance_dir, preset, entry):
    ref = json.loads((conformance_dir / "full_size_keys.json").read_text())["models"][entry]
    with torch.device("meta"):
        net = SwinUNet(UNET_PRESETS[preset])
    sd = net.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [
        (e["key"], e["shape"]) for e in ref["keys"]
    ]
    assert [str(v.dtype).removeprefix("torch.") for v in sd.values()] == [
        e["dtype"] for e in ref["keys"]
    ]
    assert net.num_parameters() == ref["num_parameters"]
    n_buf = sum(v.numel() for k, v in sd.items() if k.endswith(("attn_mask", "_index")))
    assert n_buf == ref["num_buffer_elements_in_state_dict"]
    assert net.size_multiple == 64
    assert infer_unet_config(sd) == UNET_PRESETS[preset]
