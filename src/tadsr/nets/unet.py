"""ResShift's ``UNetModelSwin`` re-implemented with the official state-dict layout (the ResShift
paper's network; its keys: docs/ARCHITECTURE.md).

Layout (keys as in the official code): ``time_embed`` (Linear mc->4mc, SiLU, Linear),
optional ``feature_extractor`` (LQ conv stages when lq_size > image_size), ``input_blocks``
(conv, then per level ResBlocks with a Swin layer after the first one when the level's
resolution is in ``attention_resolutions``, stride-2 conv between levels), ``middle_block``
(ResBlock, Swin layer, ResBlock), ``output_blocks`` (per level num_res_blocks + 1 ResBlocks
on [h, skip], Swin after the first, nearest x2 + conv after the last except at level 0) and
``out`` (GN, SiLU, conv). The network receives the integer step index t and predicts x0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tadsr.nets.blocks import (
    Downsample,
    GroupNorm32,
    ResBlock,
    TimestepSequential,
    Upsample,
    timestep_embedding,
    zero_init,
)
from tadsr.nets.swin import SwinLayer
from tadsr.utils.config import DictConfig

FE_BASE_CHANNELS = 16  # first width of the official LQ feature extractor
LQ_SKIP_KERNEL = 5  # covers bicubic's 4-tap support at every x4 sub-pixel phase


def bicubic_unshuffle_kernel(channels: int, scale: int, k: int = LQ_SKIP_KERNEL) -> Tensor:
    """Conv weights (channels*scale², channels, k, k) such that a replicate-padded conv of an
    image equals pixel_unshuffle(bicubic x scale upsampling of it) (torch's bicubic,
    align_corners False), found by upsampling unit impulses."""
    n = 4 * k  # room so the probed centre never meets the border
    c = n // 2
    weight = torch.zeros(channels * scale * scale, channels, k, k, dtype=torch.float64)
    for dy in range(k):
        for dx in range(k):
            img = torch.zeros(1, 1, n, n, dtype=torch.float64)
            img[..., c + dy - k // 2, c + dx - k // 2] = 1.0
            up = F.interpolate(img, scale_factor=scale, mode="bicubic", align_corners=False)
            taps = F.pixel_unshuffle(up, scale)[0, :, c, c]  # (scale²,)
            for ch in range(channels):
                weight[ch * scale * scale : (ch + 1) * scale * scale, ch, dy, dx] = taps
    return weight.float()


def gaussian_taps(sigma: float) -> Tensor:
    """Normalised 1-D Gaussian taps over +-ceil(3 sigma)."""
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).float()


def separable_blur(x: Tensor, taps: Tensor, pad_mode: str, channels: int) -> Tensor:
    """Each of the ``channels`` channels of (B,C,H,W) filtered by the 1-D ``taps`` along x,
    then along y, with the borders padded by ``pad_mode`` (an ``F.pad`` mode). ``channels`` is
    a plain int, not read from ``x``, so that an ONNX trace keeps the kernel's shape fixed."""
    c, r = channels, taps.numel() // 2
    kx = taps.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=pad_mode), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=pad_mode), kx.transpose(2, 3), groups=c)


class LQSkip(nn.Module):
    """Fixed LQ -> latent path: Gaussian blur (replicate borders), then bicubic x scale
    upsampling in pixel-unshuffle layout as one conv. No parameters; the kernels are
    non-persistent buffers rebuilt from the config, so files carry no copy of them."""

    weight: Tensor
    taps: Tensor

    def __init__(self, channels: int, scale: int, sigma: float) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("weight", bicubic_unshuffle_kernel(channels, scale), persistent=False)
        taps = gaussian_taps(sigma) if sigma > 0 else torch.ones(1)
        self.register_buffer("taps", taps, persistent=False)

    def forward(self, lq: Tensor) -> Tensor:
        x = lq.float()
        if self.taps.numel() > 1:
            x = separable_blur(x, self.taps, "replicate", self.channels)
        p = self.weight.shape[-1] // 2
        return F.conv2d(F.pad(x, (p, p, p, p), mode="replicate"), self.weight)


@dataclass(frozen=True, kw_only=True)
class UNetConfig(DictConfig):
    """Hyper-parameters of UNetModelSwin (names as in the official constructor).

    ``cond_lq`` True: the LQ image (``lq_channels``) is concatenated after x on channels,
    first through a conv feature extractor when ``lq_size > image_size``. ``cond_lq`` False
    builds an unconditional network (no lq input; not an official configuration).
    ``norm_groups`` is the GroupNorm group count (32 in every official model).
    ``lq_skip`` True adds a fixed path from the LQ image to the output: the LQ image blurred
    by a Gaussian of ``lq_skip_sigma`` LQ pixels (0: no blur), upsampled bicubically and
    pixel-unshuffled, so the network predicts x0 as that smooth estimate plus a learned
    correction and need not carry absolute colour through its GroupNorms. Not an official
    configuration; it has no weights (its kernels follow from the config), needs
    ``lq_size == image_size`` and ``out_channels = lq_channels * s²``.
    """

    image_size: int
    in_channels: int
    model_channels: int
    out_channels: int
    num_res_blocks: tuple[int, ...]
    attention_resolutions: tuple[int, ...]
    channel_mult: tuple[int, ...]
    num_head_channels: int = 32
    use_scale_shift_norm: bool = True
    swin_depth: int = 2
    swin_embed_dim: int
    window_size: int = 8
    mlp_ratio: float = 4.0
    cond_lq: bool = True
    lq_size: int
    lq_channels: int = 3
    conv_resample: bool = True
    dropout: float = 0.0
    norm_groups: int = 32
    lq_skip: bool = False
    lq_skip_sigma: float = 0.0

    def __post_init__(self) -> None:
        for name in ("num_res_blocks", "attention_resolutions", "channel_mult"):
            value = getattr(self, name)
            if isinstance(value, int):
                value = (value,) * (len(self.channel_mult) if name == "num_res_blocks" else 1)
            object.__setattr__(self, name, tuple(int(v) for v in value))
        object.__setattr__(self, "mlp_ratio", float(self.mlp_ratio))
        object.__setattr__(self, "dropout", float(self.dropout))
        object.__setattr__(self, "lq_skip_sigma", float(self.lq_skip_sigma))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on inconsistent values."""
        if len(self.num_res_blocks) != len(self.channel_mult) or not self.channel_mult:
            raise ValueError(
                f"UNetConfig: num_res_blocks {self.num_res_blocks} must have one entry per "
                f"level of channel_mult {self.channel_mult}"
            )
        if self.swin_embed_dim % self.num_head_channels:
            raise ValueError(
                f"UNetConfig: swin_embed_dim {self.swin_embed_dim} is not a multiple of "
                f"num_head_channels {self.num_head_channels}"
            )
        widths = [self.model_channels * m for m in self.channel_mult] + [self.swin_embed_dim]
        if any(w % self.norm_groups for w in widths):
            raise ValueError(
                f"UNetConfig: channel widths {widths} must be multiples of norm_groups "
                f"{self.norm_groups}"
            )
        if self.cond_lq:
            ratio = self.lq_size / self.image_size
            if ratio < 1 or 2 ** round(math.log2(ratio)) != ratio:
                raise ValueError(
                    f"UNetConfig: lq_size {self.lq_size} must be image_size "
                    f"{self.image_size} times a power of two"
                )

        if self.lq_skip and self.lq_skip_scale is None:
            raise ValueError(
                f"UNetConfig: lq_skip needs an LQ-conditioned network with lq_size == "
                f"image_size and out_channels ({self.out_channels}) = lq_channels "
                f"({self.lq_channels}) times a square"
            )
        if self.lq_skip_sigma < 0:
            raise ValueError(f"UNetConfig: lq_skip_sigma must be >= 0, got {self.lq_skip_sigma}")

    @property
    def lq_skip_scale(self) -> int | None:
        """s with out_channels = lq_channels * s² when an LQ skip is possible, else None."""
        if not self.cond_lq or self.lq_size != self.image_size:
            return None
        ratio, rem = divmod(self.out_channels, self.lq_channels)
        s = math.isqrt(ratio)
        return s if rem == 0 and s * s == ratio else None

    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    @property
    def swin_heads(self) -> int:
        return self.swin_embed_dim // self.num_head_channels

    @property
    def feature_extractor_stages(self) -> int:
        """Number of stride-2 stages of the LQ feature extractor (0: identity)."""
        return round(math.log2(self.lq_size / self.image_size)) if self.cond_lq else 0

    @property
    def lq_feature_channels(self) -> int:
        """Channels the LQ branch adds to the first conv."""
        if not self.cond_lq:
            return 0
        n = self.feature_extractor_stages
        return self.lq_channels if n == 0 else FE_BASE_CHANNELS * 2**n


_SR = UNetConfig(
    image_size=64,
    in_channels=3,
    model_channels=160,
    out_channels=3,
    num_res_blocks=(2, 2, 2, 2),
    attention_resolutions=(64, 32, 16, 8),
    channel_mult=(1, 2, 2, 4),
    num_head_channels=32,
    swin_depth=2,
    swin_embed_dim=192,
    window_size=8,
    mlp_ratio=4.0,
    lq_size=64,
)

UNET_PRESETS: dict[str, UNetConfig] = {
    # configs/realsr_swinunet_realesrgan256.yaml: 118,593,583 parameters.
    "sr": _SR,
    # configs/faceir_gfpgan512_lpips.yaml: 8-channel f8 latent, 512 LQ -> feature extractor.
    "face": replace(_SR, in_channels=8, out_channels=8, lq_size=512),
    # conformance fixtures unet_sr_small / unet_face_small (widths 32 / 64).
    "sr_small_fixture": replace(_SR, model_channels=32, swin_embed_dim=64),
    "face_small_fixture": replace(
        _SR, model_channels=32, swin_embed_dim=64, in_channels=8, out_channels=8, lq_size=512
    ),
}


def feature_channels(cfg: UNetConfig) -> list[int]:
    """Channels of the ``encoder_features`` maps: one per downsample (it keeps the channels
    of the level it ends), then the last encoder block and the middle block (the deepest
    level's). The official 4-level design gives 5 maps: 160, 320, 320, 640, 640."""
    deepest = cfg.model_channels * cfg.channel_mult[-1]
    downs = [cfg.model_channels * m for m in cfg.channel_mult[:-1]]
    return downs + [deepest, deepest]


class SwinUNet(nn.Module):
    """UNetModelSwin: ``forward(x, timesteps, lq) -> x0_hat`` (official key layout)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        emb_dim = 4 * mc
        groups = cfg.norm_groups
        self.time_embed = nn.Sequential(
            nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.feature_extractor = self._build_feature_extractor(cfg)

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, emb_dim, cout, cfg.dropout, cfg.use_scale_shift_norm, groups)

        def swin(ch: int, ds: int) -> SwinLayer:
            return SwinLayer(
                ch,
                cfg.swin_embed_dim,
                cfg.swin_heads,
                cfg.window_size,
                cfg.swin_depth,
                ds,
                cfg.mlp_ratio,
                groups,
            )

        ch = cfg.channel_mult[0] * mc
        first_in = cfg.in_channels + cfg.lq_feature_channels
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(first_in, ch, 3, 1, 1))])
        skip_chans = [ch]
        self._level_ends: list[int] = []  # input block index ending each level (pre-downsample)
        # discriminator taps: each downsample's output, then the last encoder block
        self._feature_taps: list[int] = []
        ds = cfg.image_size
        for level, mult in enumerate(cfg.channel_mult):
            for j in range(cfg.num_res_blocks[level]):
                layers: list[nn.Module] = [res(ch, mult * mc)]
                ch = mult * mc
                if j == 0 and ds in cfg.attention_resolutions:
                    layers.append(swin(ch, ds))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_chans.append(ch)
            self._level_ends.append(len(self.input_blocks) - 1)
            if level != cfg.num_levels - 1:
                self.input_blocks.append(TimestepSequential(Downsample(ch, cfg.conv_resample)))
                self._feature_taps.append(len(self.input_blocks) - 1)
                skip_chans.append(ch)
                ds //= 2
        self._feature_taps.append(len(self.input_blocks) - 1)
        self.middle_block = TimestepSequential(res(ch, ch), swin(ch, ds), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks[level] + 1):
                layers = [res(ch + skip_chans.pop(), mult * mc)]
                ch = mult * mc
                if i == 0 and ds in cfg.attention_resolutions:
                    layers.append(swin(ch, ds))
                if level and i == cfg.num_res_blocks[level]:
                    layers.append(Upsample(ch, cfg.conv_resample))
                    ds *= 2
                self.output_blocks.append(TimestepSequential(*layers))
        self.out = nn.Sequential(
            GroupNorm32(groups, ch),
            nn.SiLU(),
            zero_init(nn.Conv2d(ch, cfg.out_channels, 3, padding=1)),
        )
        if cfg.lq_skip:
            scale = cfg.lq_skip_scale
            assert scale is not None  # UNetConfig.__post_init__ refuses lq_skip without one
            self.lq_skip = LQSkip(cfg.lq_channels, scale, cfg.lq_skip_sigma)
        self._size_multiple = self._compute_size_multiple()

    @staticmethod
    def _build_feature_extractor(cfg: UNetConfig) -> nn.Module:
        """Identity, or log2(lq_size/image_size) stages of [conv, SiLU, stride-2 conv]."""
        if cfg.feature_extractor_stages == 0:
            return nn.Identity()
        layers: list[nn.Module] = []
        cin, base = cfg.lq_channels, FE_BASE_CHANNELS
        for _ in range(cfg.feature_extractor_stages):
            layers += [nn.Conv2d(cin, base, 3, 1, 1), nn.SiLU(), Downsample(base, True, 2 * base)]
            cin = base = 2 * base
        return nn.Sequential(*layers)

    def _compute_size_multiple(self) -> int:
        mult = 2 ** (self.cfg.num_levels - 1)
        for name, module in self.named_modules():
            if isinstance(module, SwinLayer):
                level = self._swin_level(name)
                mult = math.lcm(mult, module.size_multiple * 2**level)
        return mult

    def _swin_level(self, name: str) -> int:
        """Resolution level (0 = full size) of a Swin layer from its module name."""
        top, idx = name.split(".")[:2]
        if top == "middle_block":
            return self.cfg.num_levels - 1
        idx_i = int(idx)
        if top == "input_blocks":
            return sum(1 for e in self._level_ends if e < idx_i)
        # output blocks run from the deepest level up; each level has num_res_blocks + 1
        start = 0
        for level in reversed(range(self.cfg.num_levels)):
            start += self.cfg.num_res_blocks[level] + 1
            if idx_i < start:
                return level
        raise AssertionError(name)

    @property
    def size_multiple(self) -> int:
        """Spatial multiple a run-time latent must have.

        lcm over levels of 2**level and (Swin window of that level) * 2**level; for the
        official design this is window_size * 2**(len(channel_mult) - 1) = 64.
        """
        return self._size_multiple

    def num_parameters(self) -> int:
        """Number of parameters (buffers excluded)."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ forward
    def _embed(self, timesteps: Tensor, dtype: torch.dtype) -> Tensor:
        temb = timestep_embedding(timesteps.reshape(-1), self.cfg.model_channels)
        return self.time_embed(temb.to(dtype))

    def _stem(self, x: Tensor, timesteps: Tensor, lq: Tensor | None) -> tuple[Tensor, Tensor]:
        """Checks the inputs, embeds t and concatenates the LQ features: (h, emb)."""
        if x.ndim != 4:
            raise ValueError(f"SwinUNet: x must be NCHW, got shape {tuple(x.shape)}")
        m = self.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"SwinUNet: latent size {tuple(x.shape[-2:])} is not a multiple of {m}"
            )
        # the first conv's weight (input_blocks.0.0): float32 also under autocast
        dtype = next(self.input_blocks.parameters()).dtype
        timesteps = timesteps.to(x.device)
        if timesteps.ndim == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self._embed(timesteps, dtype)
        if self.cfg.cond_lq:
            if lq is None:
                raise ValueError("SwinUNet: this network is LQ-conditioned; pass lq")
            feats = self.feature_extractor(lq.to(dtype))
            if feats.shape[-2:] != x.shape[-2:]:
                raise ValueError(
                    f"SwinUNet: lq {tuple(lq.shape[-2:])} gives features "
                    f"{tuple(feats.shape[-2:])}, not the latent size {tuple(x.shape[-2:])}"
                )
            x = torch.cat([x.to(dtype), feats], dim=1)
        elif lq is not None:
            raise ValueError("SwinUNet: this network is not LQ-conditioned; lq must be None")
        return x.to(dtype), emb

    def forward(self, x: Tensor, timesteps: Tensor, lq: Tensor | None = None) -> Tensor:
        """x: scaled latent (B, C, H, W); timesteps: int64 (B,) indices; lq: LR image."""
        h, emb = self._stem(x, timesteps, lq)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        out = self.out(h)
        if self.cfg.lq_skip:
            out = out + self.lq_skip(lq).to(out.dtype)
        return out.to(x.dtype)

    def encoder_features(self, x: Tensor, timesteps: Tensor, lq: Tensor | None) -> list[Tensor]:
        """The maps the TAD-SR discriminator reads (TAD-SR paper, He et al., arXiv 2408.07476:
        the time-aware discriminator).

        The output of each downsample, then of the last encoder block, then of the middle
        block: the official ``hs[3], hs[6], hs[9], hs[11]`` and middle for the 4-level
        design (at SR size 32², 16², 8², 8², 8²). A model with fewer levels has fewer
        downsamples, so fewer maps, and no map is repeated. Channels: ``feature_channels``.
        """
        h, emb = self._stem(x, timesteps, lq)
        feats: list[Tensor] = []
        for idx, block in enumerate(self.input_blocks):
            h = block(h, emb)
            if idx in self._feature_taps:
                feats.append(h)
        feats.append(self.middle_block(h, emb))
        return feats


# ---------------------------------------------------------------------- inference
def _shape(sd: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    return tuple(sd[key].shape)


def _swin_facts(sd: Mapping[str, Tensor], prefix: str) -> dict[str, Any]:
    """Depth, embed dim, heads, window, mlp hidden, masks of the Swin layer at ``prefix``."""
    blocks = sorted(
        {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"blocks\.(\d+)\.", k))}
    )
    if not blocks or blocks != list(range(len(blocks))):
        raise ValueError(f"not a UNetModelSwin state dict: Swin layer {prefix} has no blocks")
    table = _shape(sd, f"{prefix}blocks.0.attn.relative_position_bias_table")
    window = (math.isqrt(table[0]) + 1) // 2
    if (2 * window - 1) ** 2 != table[0]:
        raise ValueError(f"not a UNetModelSwin state dict: bad bias table shape {table}")
    masks = [
        _shape(sd, f"{prefix}blocks.{b}.attn_mask")
        for b in blocks
        if f"{prefix}blocks.{b}.attn_mask" in sd
    ]
    return {
        "depth": len(blocks),
        "embed": _shape(sd, f"{prefix}patch_embed.proj.weight")[0],
        "heads": table[1],
        "window": window,
        "hidden": _shape(sd, f"{prefix}blocks.0.mlp.fc1.weight")[0],
        "masks": masks,
        "patch_norm": any(k.startswith(f"{prefix}patch_embed.norm") for k in sd),
    }


def infer_unet_config(state_dict: Mapping[str, Tensor]) -> UNetConfig:
    """Recover every UNetConfig field from key names and tensor shapes alone (see
    ``_infer``); raises ValueError when the dict is not a UNetModelSwin."""
    try:
        return _infer(state_dict)
    except (KeyError, IndexError) as err:
        raise ValueError(f"not a UNetModelSwin state dict (missing or malformed {err})") from None


def _encoder_levels(sd: Mapping[str, Tensor]) -> tuple[list[list[int]], bool]:
    """The ResBlock indices of each encoder level, and whether downsampling is a conv."""
    indices = {int(m.group(1)) for k in sd if (m := re.match(r"input_blocks\.(\d+)\.", k))}
    levels: list[list[int]] = [[]]
    conv_resample = True
    for idx in range(1, max(indices) + 1):
        p = f"input_blocks.{idx}.0."
        if f"{p}in_layers.2.weight" in sd:
            levels[-1].append(idx)
        elif f"{p}op.weight" in sd or idx not in indices:
            conv_resample = f"{p}op.weight" in sd
            levels.append([])
        else:
            raise ValueError(f"not a UNetModelSwin state dict: unknown block input_blocks.{idx}")
    if any(not lv for lv in levels):
        raise ValueError("not a UNetModelSwin state dict: a level without ResBlocks")
    return levels, conv_resample


def _swin_geometry(sd: Mapping[str, Tensor], levels: list[list[int]]):
    """(middle Swin facts, window size, image size, attention resolutions)."""
    n_levels = len(levels)
    swin_levels = [
        li
        for li, lv in enumerate(levels)
        if f"input_blocks.{lv[0]}.1.patch_embed.proj.weight" in sd
    ]
    mid = _swin_facts(sd, "middle_block.1.")
    if mid["patch_norm"]:
        raise ValueError("Swin patch_norm=True checkpoints are not supported (no official one)")
    facts = {li: _swin_facts(sd, f"input_blocks.{levels[li][0]}.1.") for li in swin_levels}
    facts.setdefault(n_levels - 1, mid)
    window_size = max(f["window"] for f in facts.values())
    image_size = None
    for li, f in sorted(facts.items()):
        if f["masks"]:
            image_size = f["window"] * math.isqrt(f["masks"][0][0]) * 2**li
            break
    if image_size is None:
        image_size = mid["window"] * 2 ** (n_levels - 1)
    return mid, window_size, image_size, tuple(image_size // 2**li for li in swin_levels)


def _lq_branch(sd: Mapping[str, Tensor], image_size: int, first_in: int, out_channels: int):
    """(cond_lq, lq_channels, lq_size, in_channels) from the LQ feature extractor."""
    fe_ops = sorted(
        int(m.group(1)) for k in sd if (m := re.match(r"feature_extractor\.(\d+)\.op\.weight$", k))
    )
    if fe_ops:
        lq_channels = _shape(sd, "feature_extractor.0.weight")[1]
        fe_out = _shape(sd, f"feature_extractor.{fe_ops[-1]}.op.weight")[0]
        found = True, lq_channels, image_size * 2 ** len(fe_ops), first_in - fe_out
    elif first_in == out_channels:
        found = False, 3, image_size, first_in
    else:
        found = True, 3, image_size, first_in - 3
    if found[3] <= 0:
        raise ValueError(f"cannot split the first conv's {first_in} inputs into x and lq")
    return found


def _infer(state_dict: Mapping[str, Tensor]) -> UNetConfig:
    """Recover every UNetConfig field from key names and tensor shapes alone.

    ``dropout`` cannot be seen (0 is returned); ``norm_groups`` is 32 unless a norm width
    is not a multiple of 32 (then the largest common divisor <= 32). ``image_size`` comes
    from a shifted block's ``attn_mask`` (nW = (ds / w)²) or, without one, from the
    windows (the deepest level taken as image_size / 2**(levels-1) = its window).
    Raises ValueError when the dict is not a UNetModelSwin.
    """
    sd = state_dict
    need = ("time_embed.0.weight", "input_blocks.0.0.weight", "out.2.weight")
    missing = [k for k in need if k not in sd]
    if missing or not any(k.startswith("middle_block.1.") for k in sd):
        raise ValueError(
            f"not a UNetModelSwin state dict (missing {missing or ['middle_block.1.*']})"
        )
    mc = _shape(sd, "time_embed.0.weight")[1]
    first_out, first_in = _shape(sd, "input_blocks.0.0.weight")[:2]
    out_channels = _shape(sd, "out.2.weight")[0]
    levels, conv_resample = _encoder_levels(sd)
    level_ch = [_shape(sd, f"input_blocks.{lv[0]}.0.in_layers.2.weight")[0] for lv in levels]
    if any(c % mc for c in level_ch) or first_out % mc:
        raise ValueError(f"level widths {level_ch} are not multiples of model_channels {mc}")
    emb_out = _shape(sd, f"input_blocks.{levels[0][0]}.0.emb_layers.1.weight")[0]
    mid, window_size, image_size, attention_resolutions = _swin_geometry(sd, levels)
    cond_lq, lq_channels, lq_size, in_channels = _lq_branch(sd, image_size, first_in, out_channels)
    norm_widths = [
        _shape(sd, k)[0] for k in sd if re.search(r"(in_layers|out_layers)\.0\.weight$", k)
    ]
    norm_widths.append(mid["embed"])
    groups = 32
    while any(w % groups for w in norm_widths):
        groups -= 1
    return UNetConfig(
        image_size=image_size,
        in_channels=in_channels,
        model_channels=mc,
        out_channels=out_channels,
        num_res_blocks=tuple(len(lv) for lv in levels),
        attention_resolutions=attention_resolutions,
        channel_mult=tuple(c // mc for c in level_ch),
        num_head_channels=mid["embed"] // mid["heads"],
        use_scale_shift_norm=emb_out == 2 * level_ch[0],
        swin_depth=mid["depth"],
        swin_embed_dim=mid["embed"],
        window_size=window_size,
        mlp_ratio=mid["hidden"] / mid["embed"],
        cond_lq=cond_lq,
        lq_size=lq_size,
        lq_channels=lq_channels,
        conv_resample=conv_resample,
        norm_groups=groups,
    )
