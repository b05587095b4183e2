"""UNetConfig round trips, config inference, run-time sizes, features and training."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from tadsr.nets.swin import shift_labels, shift_mask
from tadsr.nets.unet import (
    UNET_PRESETS,
    SwinUNet,
    UNetConfig,
    feature_channels,
    infer_unet_config,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets gain nothing from 2 threads; on a loaded 2-core box OpenMP spinning made
    the training test ~40x slower with 2 threads, so these tests run on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = UNetConfig(
    image_size=32,
    in_channels=48,
    out_channels=48,
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_res_blocks=(1, 1, 1),
    attention_resolutions=(32, 16, 8),
    swin_embed_dim=32,
    num_head_channels=32,
    lq_size=32,
    window_size=8,
)

# small variants exercising every inferred field (widths kept tiny)
VARIANTS = {
    "tiny": TINY,
    "groups8_heads2": dataclasses.replace(
        TINY, model_channels=16, swin_embed_dim=16, num_head_channels=8, norm_groups=16
    ),
    "no_scale_shift_avgpool": dataclasses.replace(
        TINY, use_scale_shift_norm=False, conv_resample=False, attention_resolutions=(16,)
    ),
    "depth3_mlp2_nb21": dataclasses.replace(
        TINY, swin_depth=3, mlp_ratio=2.0, num_res_blocks=(2, 1, 1), channel_mult=(1, 1, 2)
    ),
    "fe_lq2x_4ch": dataclasses.replace(TINY, lq_size=64, lq_channels=4, in_channels=4),
    "unconditional": dataclasses.replace(TINY, cond_lq=False, in_channels=8, out_channels=8),
    "depth1_small_image": dataclasses.replace(
        TINY, swin_depth=1, image_size=16, attention_resolutions=(16, 8, 4), lq_size=16
    ),
    "window4": dataclasses.replace(
        TINY, window_size=4, image_size=16, lq_size=16, attention_resolutions=(16, 8, 4)
    ),
}


def test_config_round_trip():
    for cfg in [*UNET_PRESETS.values(), *VARIANTS.values()]:
        d = json.loads(json.dumps(cfg.to_dict()))
        assert isinstance(d["channel_mult"], list)
        assert UNetConfig.from_dict(d) == cfg
    tupled = {k: tuple(v) if isinstance(v, list) else v for k, v in TINY.to_dict().items()}
    assert UNetConfig.from_dict(tupled) == TINY
    with pytest.raises(ValueError, match="unknown keys"):
        UNetConfig.from_dict({**TINY.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="norm_groups"):
        dataclasses.replace(TINY, model_channels=40)
    with pytest.raises(ValueError, match="lq_size"):
        dataclasses.replace(TINY, lq_size=48)


def test_lq_skip_starts_at_bicubic():
    """With the zero-initialised head, an lq_skip network outputs exactly the pixel-unshuffled
    bicubic x4 upsampling of its (blurred) LQ input, borders included; the skip has no weights
    and no state-dict entries, and the config round-trips."""
    torch.manual_seed(0)
    net = SwinUNet(dataclasses.replace(TINY, lq_skip=True))
    lq = torch.rand(2, 3, 32, 64) * 2 - 1
    x, t = torch.randn(2, 48, 32, 64), torch.tensor([0, 14])
    up = torch.nn.functional.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False)
    assert (net(x, t, lq) - torch.nn.functional.pixel_unshuffle(up, 4)).abs().max() < 1e-5
    assert SwinUNet(TINY)(x, t, lq).abs().max() == 0  # without it the same net predicts zeros
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in SwinUNet(TINY).parameters()
    )
    assert net.state_dict().keys() == SwinUNet(TINY).state_dict().keys()

    blurred = SwinUNet(dataclasses.replace(TINY, lq_skip=True, lq_skip_sigma=2.0))
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert (blurred(x[:1, :, :, :32], t[:1], flat) - 0.3).abs().max() < 1e-6  # keeps a level
    smooth = blurred(x[:1, :, :, :32], t[:1], lq[:1, :, :, :32])
    sharp = net(x[:1, :, :, :32], t[:1], lq[:1, :, :, :32])
    assert smooth.std() < 0.5 * sharp.std()  # white noise in, much less out
    assert abs(smooth.mean() - sharp.mean()) < 0.02
    cfg = blurred.cfg
    assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="lq_skip"):
        dataclasses.replace(TINY, lq_skip=True, out_channels=40, in_channels=40)
    with pytest.raises(ValueError, match="lq_skip"):
        dataclasses.replace(TINY, lq_skip=True, lq_size=64)
    with pytest.raises(ValueError, match="lq_skip_sigma"):
        dataclasses.replace(TINY, lq_skip=True, lq_skip_sigma=-1)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_infer_custom_configs(name):
    cfg = VARIANTS[name]
    net = SwinUNet(cfg)
    assert infer_unet_config(net.state_dict()) == cfg
    SwinUNet(cfg).load_state_dict(net.state_dict(), strict=True)


def test_infer_rejects_other_dicts():
    with pytest.raises(ValueError, match="not a UNetModelSwin"):
        infer_unet_config({"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)})
    sd = SwinUNet(TINY).state_dict()
    del sd["middle_block.1.blocks.0.attn.relative_position_bias_table"]
    with pytest.raises(ValueError, match="not a UNetModelSwin"):
        infer_unet_config(sd)


def test_shift_mask_quirk():
    # labels depend on the in-window column and the window row only, never on W
    lab = shift_labels(16, 8, 4)
    assert lab.shape == (2, 64)
    assert lab[0].tolist() == [0] * 64
    assert lab[1].reshape(8, 8)[0].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]
    assert torch.equal(lab[1].reshape(8, 8), lab[1].reshape(8, 8)[:1].expand(8, 8))
    m = shift_mask(16, 24, 8, 4)
    assert m.shape == (6, 64, 64)
    assert torch.equal(m[3], m[5]) and m[0].abs().sum() == 0 and m[3].min() == -100


def test_sizes_features_and_cache():
    torch.manual_seed(0)
    net = SwinUNet(TINY).eval()
    assert net.size_multiple == 32
    for p in net.parameters():  # undo the zero init so that outputs carry information
        torch.nn.init.normal_(p, std=0.05)
    x, lq = torch.randn(2, 48, 64, 96), torch.randn(2, 3, 64, 96)
    t = torch.tensor([3, 1])
    seen = {}
    net.middle_block.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    with torch.no_grad():
        out = net(x, t, lq)
        feats = net.encoder_features(x, t, lq)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # 3 levels: the two downsamples' outputs, the last encoder block, the middle block
    assert [f.shape[1] for f in feats] == feature_channels(TINY) == [32, 64, 64, 64]
    assert [tuple(f.shape[2:]) for f in feats] == [(32, 48), (16, 24), (16, 24), (16, 24)]
    torch.testing.assert_close(feats[2], seen["inp"])
    torch.testing.assert_close(feats[3], seen["out"])
    # the shifted block of level 0 cached its run-time mask for 64x96
    blk = net.input_blocks[1][1].blocks[1]
    assert (64, 96, "cpu") in blk._mask_cache
    with pytest.raises(ValueError, match="multiple of 32"):
        net(torch.randn(1, 48, 48, 48), t[:1], torch.randn(1, 3, 48, 48))
    with pytest.raises(ValueError, match="pass lq"):
        net(x, t)
    # full-size feature channels (discriminator heads)
    assert feature_channels(UNET_PRESETS["sr"]) == [160, 320, 320, 640, 640]


def test_bfloat16_paths():
    net = SwinUNet(VARIANTS["groups8_heads2"]).eval()
    x, lq, t = torch.randn(1, 48, 32, 32), torch.randn(1, 3, 32, 32), torch.tensor([5])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(x, t, lq).dtype == torch.float32
    net = net.to(torch.bfloat16)
    with torch.no_grad():
        out = net(x.bfloat16(), t, lq.bfloat16())
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_small_model_trains():
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        TINY,
        image_size=16,
        lq_size=16,
        in_channels=4,
        out_channels=4,
        model_channels=16,
        channel_mult=(1, 2),
        num_res_blocks=(1, 1),
        attention_resolutions=(16, 8),
        swin_embed_dim=16,
        num_head_channels=8,
        norm_groups=8,
    )
    net = SwinUNet(cfg).train()
    assert net.size_multiple == 16
    x, lq = torch.randn(4, 4, 16, 16), torch.randn(4, 3, 16, 16)
    t = torch.tensor([0, 4, 9, 14])
    target = 0.5 * x + 0.2 * lq[:, :1]  # a learnable map of the inputs
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = (net(x, t, lq) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.7 * losses[0], losses
    table = net.input_blocks[1][1].blocks[1].attn.relative_position_bias_table
    assert table.grad is not None and table.grad.abs().sum() > 0
