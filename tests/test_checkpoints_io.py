"""Our safetensors weights files, `tadsr info` and `tadsr export-official`."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file, save_file

from tadsr.checkpoints.io import load_model_file, read_metadata, save_model
from tadsr.checkpoints.official import CheckpointError
from tadsr.cli import main
from tadsr.diffusion.schedule import SCHEDULE_PRESETS
from tadsr.nets.autoencoder import VQ_PRESETS, VQAutoencoder
from tadsr.nets.codec import PixelUnshuffleCodec, VQCodec
from tadsr.nets.unet import UNET_PRESETS, SwinUNet

PARAMS = {  # from the fixtures' JSON (num_parameters)
    "unet_sr_small": 5_383_015,
    "unet_face_small": 5_565_516,
    "vq_f4_small": 3_473_470,
    "vq_f8_small": 594_267,
}


def _official_pth(conformance_dir, name, path):
    sd = load_file(str(conformance_dir / f"{name}.safetensors"))
    keys = [
        e["key"]
        for e in json.loads((conformance_dir / f"{name}.json").read_text())["state_dict_keys"]
    ]
    torch.save(OrderedDict((k, sd[k]) for k in keys), path)
    return path


@pytest.fixture(scope="module")
def small_unet():
    torch.manual_seed(0)
    return SwinUNet(UNET_PRESETS["sr_small_fixture"])


@pytest.fixture(scope="module")
def vq_codec(conformance_dir):
    ae = VQAutoencoder(VQ_PRESETS["vq_f8_small"])
    ae.load_state_dict(load_file(str(conformance_dir / "vq_f8_small.safetensors")))
    return VQCodec(ae)


def test_round_trip_unet_fp16_and_vq_codec(small_unet, vq_codec, tmp_path):
    cfg, unet = UNET_PRESETS["sr_small_fixture"], small_unet
    path = save_model(
        tmp_path / "m.safetensors",
        unet=unet,
        codec=vq_codec,
        schedule=SCHEDULE_PRESETS["sr"],
        kind="sr_student",
        steps=1,
        provenance={"note": "test"},
    )
    assert not [p for p in tmp_path.iterdir() if p.name != "m.safetensors"]  # no temp left
    meta = read_metadata(path)
    assert meta["format_version"] == 1 and meta["kind"] == "sr_student" and meta["steps"] == 1
    assert meta["unet"] == cfg.to_dict() and meta["codec"] == vq_codec.to_dict()
    assert meta["schedule"] == SCHEDULE_PRESETS["sr"].to_dict() and meta["scale"] == 4
    stored = load_file(str(path))
    assert stored["unet.input_blocks.0.0.weight"].dtype == torch.float16
    assert stored["codec.quantize.embedding.weight"].dtype == torch.float32  # codebook exact
    assert not any("attn_mask" in k for k in stored)  # buffers are rebuilt, not stored

    meta2, unet2, codec2 = load_model_file(path)
    assert meta2 == meta
    assert unet2.cfg == cfg and not unet2.training
    params2, buffers2 = dict(unet2.named_parameters()), dict(unet2.named_buffers())
    for name, p in unet.named_parameters():
        assert params2[name].dtype == torch.float32
        assert torch.equal(params2[name], p.detach().half().float())
    for name, b in unet.named_buffers():
        assert torch.equal(buffers2[name], b)
    assert isinstance(codec2, VQCodec) and codec2.autoencoder.cfg == VQ_PRESETS["vq_f8_small"]
    sd2 = codec2.autoencoder.state_dict()
    for k, v in vq_codec.autoencoder.state_dict().items():
        assert torch.equal(sd2[k], v)


def test_pixel_unshuffle_model_float32(small_unet, tmp_path):
    unet = small_unet
    path = save_model(
        tmp_path / "p.safetensors",
        unet=unet,
        codec=PixelUnshuffleCodec(4),
        kind="unet",
        steps=15,
        dtype=None,
    )
    meta, unet2, codec = load_model_file(path)
    assert meta["codec"] == {"kind": "pixel_unshuffle", "factor": 4}
    assert isinstance(codec, PixelUnshuffleCodec) and codec.channels == 48
    assert all(torch.equal(p, q) for p, q in zip(unet.parameters(), unet2.parameters()))


def test_strict_on_parameters(small_unet, tmp_path):
    unet = small_unet
    path = save_model(tmp_path / "m.safetensors", unet=unet, kind="unet", steps=15)
    tensors = load_file(str(path))
    meta = {"tadsr": json.dumps(read_metadata(path))}
    del tensors["unet.out.2.bias"]
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="missing parameter"):
        load_model_file(tmp_path / "bad.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="without tadsr metadata"):
        read_metadata(tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="unknown model kind"):
        save_model(tmp_path / "k.safetensors", unet=unet, kind="student", steps=1)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_info_official_fixtures(name, conformance_dir, tmp_path, capsys):
    path = _official_pth(conformance_dir, name, tmp_path / f"{name}.pth")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    n = PARAMS[name]
    assert f"parameters: {n} ({n / 1e6:.2f} M)" in out
    assert "official PyTorch checkpoint" in out and "float32" in out
    kind = {
        "unet_sr_small": "Swin-UNet (SR layout)",
        "unet_face_small": "Swin-UNet (face layout)",
        "vq_f4_small": "VQ autoencoder f4",
        "vq_f8_small": "VQ autoencoder f8",
    }[name]
    assert f"kind:       ResShift/SinSR/TAD-SR {kind}" in out or f"kind:       {kind}" in out
    if name.startswith("vq"):  # the JSON form once per kind of network is enough
        assert main(["info", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["parameters"] == n and info["file"] == str(path)
        assert info["config"]["n_embed"] == (512 if name == "vq_f4_small" else 256)


def test_info_bad_file(tmp_path, capsys):
    bad = tmp_path / "photo.pth"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "PNG" in err
    assert main(["info", str(tmp_path / "nope.pth")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_export_official_and_info(conformance_dir, tmp_path, capsys):
    unet_pth = _official_pth(conformance_dir, "unet_sr_small", tmp_path / "unet.pth")
    vq_pth = _official_pth(conformance_dir, "vq_f4_small", tmp_path / "vq.pth")
    out = tmp_path / "tad.safetensors"
    rc = main(["export-official", str(unet_pth), "--autoencoder", str(vq_pth), "-o", str(out),
               "--kind", "sr_student"])  # fmt: skip
    assert rc == 0 and out.is_file()
    capsys.readouterr()
    meta, unet, codec = load_model_file(out)
    assert meta["kind"] == "sr_student" and meta["steps"] == 1 and meta["scale"] == 4
    assert meta["provenance"]["unet_source"] == "unet.pth"
    assert isinstance(codec, VQCodec) and codec.autoencoder.cfg == VQ_PRESETS["vq_f4_small"]
    ref = load_file(str(conformance_dir / "unet_sr_small.safetensors"))
    w = dict(unet.named_parameters())["input_blocks.0.0.weight"]
    assert torch.equal(w, ref["input_blocks.0.0.weight"].half().float())
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    total = PARAMS["unet_sr_small"] + PARAMS["vq_f4_small"]
    assert "tadsr safetensors" in text and f"parameters: {total} " in text
    assert "float16" in text and "sr_student" in text
    # A UNet where an autoencoder was expected is a failed input, not a crash.
    assert main(["export-official", str(unet_pth), "--autoencoder", str(unet_pth),
                 "-o", str(tmp_path / "x.safetensors")]) == 1  # fmt: skip
    assert "expected a vq" in capsys.readouterr().err
