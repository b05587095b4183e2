"""Official .pth files: wrappers, prefixes, kinds, strict loading and clear errors."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import load_file

from tadsr.checkpoints.official import (
    CheckpointError,
    canonicalize,
    detect_kind,
    load_official,
    load_state_dict_file,
)
from tadsr.nets.autoencoder import VQ_PRESETS


def official_sd(conformance_dir, name: str) -> OrderedDict:
    """The fixture state dict in the official key order (safetensors stores keys sorted)."""
    sd = load_file(str(conformance_dir / f"{name}.safetensors"))
    keys = [
        e["key"]
        for e in json.loads((conformance_dir / f"{name}.json").read_text())["state_dict_keys"]
    ]
    return OrderedDict((k, sd[k]) for k in keys)


def _variants(sd: OrderedDict) -> dict[str, object]:
    return {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "module": OrderedDict((f"module.{k}", v) for k, v in sd.items()),
        "orig_mod": OrderedDict((f"_orig_mod.{k}", v) for k, v in sd.items()),
        "params_ema": {"params_ema": sd},
    }


@pytest.fixture(scope="module")
def vq_sd(conformance_dir):
    return official_sd(conformance_dir, "vq_f8_small")


@pytest.mark.parametrize("variant", ["plain", "state_dict", "module", "orig_mod", "params_ema"])
def test_vq_variants_load_identically(variant, vq_sd, conformance_dir, tmp_path):
    io = load_file(str(conformance_dir / "vq_f8_small.io.safetensors"))
    path = tmp_path / "ae.pth"
    torch.save(_variants(vq_sd)[variant], path)
    loaded = load_official(path)
    assert loaded.kind == "vq" and loaded.config == VQ_PRESETS["vq_f8_small"]
    assert not loaded.report.unexpected and not loaded.report.rebuilt_buffers
    with torch.no_grad():
        assert torch.equal(loaded.module.quantize(io["z"])[1], io["indices"])
        dec = loaded.module.decode(io["z_in"])
    torch.testing.assert_close(dec, io["dec_z_in"], atol=1e-4, rtol=1e-4)
    if variant != "plain":
        assert any(w in str(loaded.report) for w in ("unwrapped", "stripped"))


def test_unet_variants_give_identical_outputs(conformance_dir, tmp_path):
    sd = official_sd(conformance_dir, "unet_sr_small")
    io = load_file(str(conformance_dir / "unet_sr_small.io.safetensors"))
    modules = []
    for variant in ("plain", "state_dict", "orig_mod"):
        path = tmp_path / f"unet_{variant}.pth"
        torch.save(_variants(sd)[variant], path)
        loaded = load_official(path, expect="unet")
        assert loaded.kind == "unet" and not loaded.report.unexpected
        modules.append(loaded.module)
    # Identical tensors in every variant, hence identical outputs; one forward checks them.
    ref = modules[0].state_dict()
    for m in modules[1:]:
        assert all(torch.equal(v, ref[k]) for k, v in m.state_dict().items())
    with torch.no_grad():
        out = modules[2](io["x_b"], io["timesteps_b"], io["lq_b"])
    torch.testing.assert_close(out, io["out_b"], atol=1e-4, rtol=1e-4)


def test_extra_keys_reported_not_fatal(vq_sd, tmp_path):
    sd = OrderedDict(vq_sd)
    sd["loss.discriminator.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(sd, path)
    loaded = load_official(path)
    assert loaded.report.unexpected == ["loss.discriminator.weight"]
    assert "loss.discriminator.weight" in str(loaded.report)


def test_missing_keys_are_named(vq_sd, tmp_path):
    sd = OrderedDict(vq_sd)
    del sd["decoder.conv_out.bias"]
    del sd["encoder.mid.attn_1.q.weight"]
    path = tmp_path / "missing.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_official(path)
    msg = str(err.value)
    assert str(path) in msg and "decoder.conv_out.bias" in msg and "attn_1.q.weight" in msg
    assert "\n" not in msg


def test_wrong_shape_is_named(vq_sd, tmp_path):
    sd = OrderedDict(vq_sd)
    sd["post_quant_conv.bias"] = torch.zeros(5)
    path = tmp_path / "shape.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="post_quant_conv.bias"):
        load_official(path)


def test_expect_mismatch(vq_sd, tmp_path):
    path = tmp_path / "ae.pth"
    torch.save(vq_sd, path)
    with pytest.raises(CheckpointError, match="expected a unet"):
        load_official(path, expect="unet")


class _NotATensor:
    pass


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing", "no such file"),
        ("png", "PNG image"),
        ("text", "text file"),
        ("random", "not a PyTorch|unrecognised"),
        ("truncated", "corrupt or truncated"),
        ("empty", "empty file"),
        ("pickle_object", "other than tensors"),
        ("unknown_kind", "unknown kind"),
        ("not_dict", "not a state dict"),
    ],
)
def test_error_messages_name_the_file(case, pattern, vq_sd, tmp_path):
    path = tmp_path / f"{case}.pth"
    if case == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif case == "text":
        path.write_text("model: resshift\nsteps: 15\n")
    elif case == "random":
        path.write_bytes(
            torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
            .to(torch.uint8)
            .numpy()
            .tobytes()
        )
        if path.read_bytes()[:1] in (b"\x80", b"P"):
            path.write_bytes(b"\x00" + path.read_bytes())
    elif case == "truncated":
        torch.save(vq_sd, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "pickle_object":
        torch.save({"net": _NotATensor()}, path)
    elif case == "unknown_kind":
        torch.save({"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, path)
    elif case == "not_dict":
        torch.save({"weights": [torch.zeros(2)]}, path)
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_official(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg and "Traceback" not in msg


def test_legacy_pickle_format_loads(vq_sd, tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(vq_sd, path, _use_new_zipfile_serialization=False)
    assert detect_kind(load_state_dict_file(path)) == "vq"


def test_safetensors_official_file(conformance_dir):
    loaded = load_official(conformance_dir / "vq_f4_small.safetensors", expect="vq")
    assert loaded.config == VQ_PRESETS["vq_f4_small"]


def test_canonicalize_rules():
    t = torch.zeros(1)
    assert list(canonicalize({"model": {"_orig_mod.module.a.b": t}})) == ["a.b"]
    assert list(canonicalize({"state_dict": {"module.x": t}, "optimizer": {}})) == ["x"]
    with pytest.raises(CheckpointError, match="twice"):
        canonicalize({"module.x": t, "x": t})
    with pytest.raises(CheckpointError):
        detect_kind({"x": t})


@pytest.mark.parametrize("preset", ["sr", "face", "small", "tiny"])
def test_unet_config_round_trip_for_every_preset(preset, tmp_path):
    """Official layouts: inferred from the weights' shapes alone. Our presets (one norm group,
    the LQ skip: no trace in the weights) are read from a training checkpoint's config."""
    from tadsr.checkpoints.official import load_official
    from tadsr.nets.unet import UNET_PRESETS, SwinUNet, infer_unet_config
    from tadsr.train.config import SMALL_UNET, TINY_UNET

    cfg = {**UNET_PRESETS, "small": SMALL_UNET, "tiny": TINY_UNET}[preset]
    if preset in ("sr", "face"):
        with torch.device("meta"):
            sd = SwinUNet(cfg).state_dict()
        assert infer_unet_config(sd) == cfg
        return
    net = SwinUNet(cfg)
    path = tmp_path / "last.pt"
    torch.save({"ema": net.state_dict(), "model": net.state_dict(), "step": 1,
                "config": {"unet": cfg.to_dict()}}, path)  # fmt: skip
    loaded = load_official(path)
    assert (
        loaded.config == cfg
        and loaded.config.norm_groups == 1
        and loaded.config.lq_skip == (preset == "small")
    )
    x = torch.randn(1, cfg.in_channels, cfg.image_size, cfg.image_size)
    t, lq = torch.tensor([3]), torch.rand(1, 3, cfg.lq_size, cfg.lq_size) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.module(x, t, lq), net.eval()(x, t, lq))
