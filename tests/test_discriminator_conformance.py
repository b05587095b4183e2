"""The time-aware discriminator against the official design (SPEC §5.3): where it taps the
teacher's encoder, how its heads are built, and how its hinge losses are reduced."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tadsr.losses import d_hinge_loss, g_hinge_loss
from tadsr.nets.discriminator import ScaleHead, TimeAwareDiscriminator
from tadsr.nets.unet import UNET_PRESETS, SwinUNet, feature_channels
from tadsr.train.config import DISTILL_PRESETS, SMALL_UNET


def _taps(cfg, latent: int) -> list[tuple[int, int, int]]:
    torch.manual_seed(0)
    net = SwinUNet(cfg).eval()
    lq_side = latent * 4 if cfg.lq_size > cfg.image_size else latent
    with torch.no_grad():
        feats = net.encoder_features(
            torch.randn(1, cfg.in_channels, latent, latent),
            torch.tensor([3]),
            torch.randn(1, 3, lq_side, lq_side),
        )
    return [tuple(f.shape[1:]) for f in feats]


def test_taps_at_sr_size_are_the_official_ones():
    """Latent 64², model channels 160, mult 1,2,2,4: hs[3], hs[6], hs[9], hs[11], middle."""
    cfg = UNET_PRESETS["sr"]
    want = [(160, 32, 32), (320, 16, 16), (320, 8, 8), (640, 8, 8), (640, 8, 8)]
    assert _taps(cfg, 64) == want
    assert feature_channels(cfg) == [c for c, _, _ in want]


def test_taps_at_small_size_repeat_no_map():
    """The bundled 3-level model: two downsamples, the last encoder block, the middle."""
    taps = _taps(SMALL_UNET, 32)
    assert taps == [(32, 16, 16), (64, 8, 8), (64, 8, 8), (64, 8, 8)]
    assert feature_channels(SMALL_UNET) == [32, 64, 64, 64]
    net = SwinUNet(SMALL_UNET)
    # the taps are the downsample blocks' outputs and the last input block, no other
    from tadsr.nets.blocks import Downsample

    downs = [i for i, b in enumerate(net.input_blocks) if isinstance(b[0], Downsample)]
    assert net._feature_taps == downs + [len(net.input_blocks) - 1]


def _layers(head: ScaleHead) -> list[nn.Module]:
    return [m for m in head.modules() if isinstance(m, nn.Conv1d | nn.GroupNorm | nn.Linear)]


@pytest.mark.parametrize("c", [160, 640])
def test_head_structure(c):
    head = ScaleHead(c)
    # time embedding 160 -> Linear -> scale and shift for C channels; GroupNorm(32) features
    assert (head.film.in_features, head.film.out_features) == (160, 2 * c)
    assert head.norm.num_groups == 32 and head.norm.num_channels == c
    assert head.conv.kernel_size == (3, 3) and not head.conv.weight.any()
    # k1 block, ONE k9 residual block, k1 to 64 logits; all C channels wide, circular, SN
    convs = [m for m in head.modules() if isinstance(m, nn.Conv1d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in convs] == [
        (c, c, 1),
        (c, c, 9),
        (c, 64, 1),
    ]
    assert convs[1].padding_mode == "circular" and convs[1].padding == (4,)
    assert all(hasattr(m, "parametrizations") for m in convs)  # spectral norm on each
    norms = [m for m in head.modules() if isinstance(m, nn.GroupNorm)][1:]
    assert [(n.num_groups, n.num_channels) for n in norms] == [(4, c), (4, c)]


def test_head_residual_and_circular_padding():
    """Logits are out((res(inp(h)) + inp(h)) / sqrt 2); the k9 conv wraps around the ends."""
    torch.manual_seed(0)
    head = ScaleHead(16).eval()
    nn.init.normal_(head.conv.weight, std=0.1)
    feat, t = torch.randn(2, 16, 4, 4), torch.tensor([0, 7])
    with torch.no_grad():
        got = head(feat, t)
        flat = {}
        head.inp.register_forward_hook(lambda m, i, o: flat.update(h=o))
        head(feat, t)
        h = flat["h"]
        want = head.out((head.res(h) + h) / math.sqrt(2))
        torch.testing.assert_close(got, want)
        # circular: a 9-tap conv on a rolled sequence gives the rolled output
        rolled = head.res.conv(torch.roll(h, 3, dims=2))
        torch.testing.assert_close(rolled, torch.roll(head.res.conv(h), 3, dims=2))
    assert got.shape == (2, 64, 16)


def test_hinge_losses_take_one_mean_over_all_heads():
    g = torch.Generator().manual_seed(0)
    # two samples, heads of 64 logits over 16, 4 and 1 positions
    real = [torch.randn(2, 64, n, generator=g) * 2 for n in (16, 4, 1)]
    fake = [torch.randn(2, 64, n, generator=g) * 2 for n in (16, 4, 1)]
    r = [x for lg in real for x in lg.flatten().tolist()]
    f = [x for lg in fake for x in lg.flatten().tolist()]
    want_d = sum(max(0.0, 1 - x) for x in r) / len(r) + sum(max(0.0, 1 + x) for x in f) / len(f)
    want_g = -sum(f) / len(f)
    assert d_hinge_loss(real, fake).item() == pytest.approx(want_d, rel=1e-5)
    assert g_hinge_loss(fake).item() == pytest.approx(want_g, rel=1e-5)
    # not the per-head mean summed over heads
    per_head = sum(-lg.mean().item() for lg in fake)
    assert abs(g_hinge_loss(fake).item() - per_head) > 1e-3


def test_hinge_starts_at_two_with_zero_initialised_heads():
    """Zero convs make the first logits constant, so L_D starts at 2, not 2 x heads."""
    disc = TimeAwareDiscriminator(feature_channels(SMALL_UNET))
    feats = [torch.randn(2, c, s, s) for c, s in zip([32, 64, 64, 64], [16, 8, 8, 8])]
    t = torch.tensor([1, 4])
    with torch.no_grad():
        loss = d_hinge_loss(disc(feats, t), disc([f * 3 for f in feats], t))
    assert loss.item() == pytest.approx(2.0, abs=0.2)


def test_distillation_clips_no_gradient_by_default():
    for name, make in DISTILL_PRESETS.items():
        assert make().optim.grad_clip == 0.0, name
