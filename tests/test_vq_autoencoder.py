"""VQ autoencoder: conformance with the official VQModelTorch, presets, codecs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from tadsr.nets.autoencoder import VQ_PRESETS, VQAutoencoder, VQConfig, infer_vq_config
from tadsr.nets.codec import PixelUnshuffleCodec, VQCodec, build_codec

TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module", params=["vq_f4_small", "vq_f8_small"])
def fixture(request, conformance_dir):
    name = request.param
    sd = load_file(str(conformance_dir / f"{name}.safetensors"))
    io = load_file(str(conformance_dir / f"{name}.io.safetensors"))
    info = json.loads((conformance_dir / f"{name}.json").read_text())
    return name, sd, io, info


def test_infer_and_load_strict(fixture):
    name, sd, _, info = fixture
    cfg = infer_vq_config(sd)  # from the file alone
    assert cfg == VQ_PRESETS[name]
    kw = info["constructor_kwargs"]
    assert cfg.n_embed == kw["n_embed"] and cfg.embed_dim == kw["embed_dim"]
    assert list(cfg.ch_mult) == kw["ddconfig"]["ch_mult"]
    model = VQAutoencoder(cfg)
    model.load_state_dict(sd, strict=True)
    assert list(model.state_dict()) == [e["key"] for e in info["state_dict_keys"]]
    assert sum(p.numel() for p in model.parameters()) == info["num_parameters"]


@torch.no_grad()
def test_outputs_match_official(fixture):
    name, sd, io, _ = fixture
    model = VQAutoencoder(infer_vq_config(sd)).eval()
    model.load_state_dict(sd, strict=True)
    z = model.encode(io["x"])
    torch.testing.assert_close(z, io["z"], **TOL)
    quant, indices = model.quantize(z)
    assert torch.equal(indices, io["indices"])  # exact: every decision has a gap >= 3e-4
    with torch.autocast("cpu", dtype=torch.bfloat16):  # distances stay float32
        assert torch.equal(model.quantize(io["z"])[1], io["indices"])
    torch.testing.assert_close(quant, io["quant"], **TOL)
    torch.testing.assert_close(model.decode(z), io["dec"], **TOL)
    torch.testing.assert_close(model.decode(z, force_not_quantize=True), io["dec_noquant"], **TOL)
    quant_in, indices_in = model.quantize(io["z_in"])
    assert torch.equal(indices_in, io["indices_z_in"])
    torch.testing.assert_close(quant_in, io["quant_z_in"], **TOL)
    torch.testing.assert_close(model.decode(io["z_in"]), io["dec_z_in"], **TOL)
    codec = VQCodec(model)
    assert codec.factor * io["z"].shape[-1] == io["x"].shape[-1]
    assert codec.channels == io["z"].shape[1]


@pytest.mark.parametrize("name", ["vq_f4", "vq_f8_face"])
def test_full_size_layout(name, conformance_dir):
    full = json.loads((conformance_dir / "full_size_keys.json").read_text())["models"][name]
    with torch.device("meta"):
        model = VQAutoencoder(VQ_PRESETS[name])
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == [(e["key"], e["shape"]) for e in full["keys"]]
    assert len(got) == full["num_keys"]
    assert sum(p.numel() for p in model.parameters()) == full["num_parameters"]
    assert infer_vq_config(model.state_dict()) == VQ_PRESETS[name]


def test_quantizer_ties_and_straight_through():
    model = VQAutoencoder(VQ_PRESETS["vq_f4_small"])
    with torch.no_grad():
        model.quantize.embedding.weight.zero_()
        model.quantize.embedding.weight[3] = torch.tensor([1.0, 0.0, 0.0])
        model.quantize.embedding.weight[5] = torch.tensor([1.0, 0.0, 0.0])  # tie with row 3
    z = torch.zeros(1, 3, 2, 2)
    z[0, 0, 1, 1] = 0.9
    z.requires_grad_(True)
    quant, idx = model.quantize(z)
    assert idx.tolist() == [0, 0, 0, 3]  # first index on ties, channel-last flattening
    assert quant[0, 0, 1, 1].item() == pytest.approx(1.0)
    quant.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight-through gradient


def test_attention_levels_and_double_z_round_trip():
    cfg = replace(VQ_PRESETS["vq_f4_small"], attn_resolutions=(64,), double_z=True, n_embed=16)
    model = VQAutoencoder(cfg)
    assert "encoder.down.2.attn.1.q.weight" in model.state_dict()
    assert "decoder.up.2.attn.2.proj_out.weight" in model.state_dict()
    assert infer_vq_config(model.state_dict()) == cfg
    assert VQConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with torch.no_grad():
        out = model.decode(model.encode(torch.randn(1, 3, 16, 16)))
    assert out.shape == (1, 3, 16, 16)


def test_infer_rejects_non_vq():
    with pytest.raises(ValueError, match="not a VQ"):
        infer_vq_config({"input_blocks.0.0.weight": torch.zeros(1)})


def test_pixel_unshuffle_codec_exact():
    codec = PixelUnshuffleCodec(4)
    img = torch.rand(2, 3, 32, 48) * 2 - 1
    lat = codec.encode(img)
    assert lat.shape == (2, 48, 8, 12) and codec.channels == 48 and codec.factor == 4
    assert torch.equal(codec.decode(lat), img)
    assert codec.to_dict() == {"kind": "pixel_unshuffle", "factor": 4}
    assert isinstance(build_codec(codec.to_dict()), PixelUnshuffleCodec)
    with pytest.raises(ValueError, match="multiple of 4"):
        codec.encode(torch.zeros(1, 3, 30, 32))


def test_vq_codec_frozen_and_factory(conformance_dir):
    sd = load_file(str(conformance_dir / "vq_f8_small.safetensors"))
    codec = build_codec({"kind": "vq", "config": VQ_PRESETS["vq_f8_small"].to_dict()}, sd)
    assert isinstance(codec, VQCodec)
    assert codec.factor == 8 and codec.channels == 8
    codec.train()
    assert not codec.autoencoder.training
    assert not any(p.requires_grad for p in codec.parameters())
    io = load_file(str(conformance_dir / "vq_f8_small.io.safetensors"))
    with torch.no_grad():  # the codec is the autoencoder's encode / quantising decode
        torch.testing.assert_close(codec.encode(io["x"]), io["z"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(codec.decode(io["z_in"]), io["dec_z_in"], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="unknown codec kind"):
        build_codec({"kind": "jpeg"})
