"""VQ autoencoder in the official ResShift / LDM `VQModelTorch` key layout.

encode(x) = quant_conv(encoder(x)) (continuous); decode(z) = decoder(post_quant_conv(q(z)))
where q snaps each latent vector to its nearest codebook row (LDM's VQ-f4, as ResShift uses it).
Hyperparameters can be read back from a state dict's shapes alone (`infer_vq_config`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadsr.utils.config import DictConfig

__all__ = ["VQConfig", "VQ_PRESETS", "VQAutoencoder", "infer_vq_config"]


@dataclass(frozen=True)
class VQConfig(DictConfig):
    """Hyperparameters of VQModelTorch (its `ddconfig` plus n_embed / embed_dim)."""

    embed_dim: int = 3
    n_embed: int = 8192
    z_channels: int = 3
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int | tuple[int, ...] = 2
    attn_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0
    double_z: bool = False

    def __post_init__(self) -> None:
        # Normalise lists (from JSON / YAML) to tuples so configs compare and hash.
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        if not isinstance(self.num_res_blocks, int):
            nrb = tuple(int(n) for n in self.num_res_blocks)
            if len(nrb) != len(self.ch_mult):
                raise ValueError(
                    f"num_res_blocks has {len(nrb)} entries but ch_mult has {len(self.ch_mult)}"
                )
            object.__setattr__(self, "num_res_blocks", nrb)

    @property
    def levels(self) -> int:
        return len(self.ch_mult)

    @property
    def factor(self) -> int:
        """Spatial downsampling factor: one stride-2 step between consecutive levels."""
        return 2 ** (self.levels - 1)

    def blocks_per_level(self) -> tuple[int, ...]:
        if isinstance(self.num_res_blocks, int):
            return (self.num_res_blocks,) * self.levels
        return tuple(self.num_res_blocks)


VQ_PRESETS: dict[str, VQConfig] = {
    # autoencoder_vq_f4.pth (ResShift SR configs): 55,322,782 parameters, 205 keys.
    "vq_f4": VQConfig(),
    # ffhq512_vq_f8_dim8_face.pth (ResShift face config): 77,009,115 parameters, 285 keys.
    "vq_f8_face": VQConfig(
        embed_dim=8,
        n_embed=4096,
        z_channels=8,
        resolution=512,
        ch=64,
        ch_mult=(1, 2, 4, 8),
        num_res_blocks=(1, 2, 3, 4),
    ),
    # Small conformance fixtures (shared/conformance/vq_*_small).
    "vq_f4_small": VQConfig(ch=32, n_embed=512),
    "vq_f8_small": VQConfig(
        embed_dim=8,
        n_embed=256,
        z_channels=8,
        resolution=512,
        ch=32,
        ch_mult=(1, 1, 1, 1),
        num_res_blocks=(1, 2, 3, 4),
    ),
}


def _norm(channels: int) -> nn.GroupNorm:
    """The autoencoder's norm: GroupNorm, 32 groups, eps 1e-6."""
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GN-SiLU-conv3, GN-SiLU-dropout-conv3, plus a 1x1 `nin_shortcut` if channels change."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = _norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention: x + proj_out(softmax(q k^T / sqrt(C)) v)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        hn = self.norm(x)

        def tokens(t: Tensor) -> Tensor:  # (B, C, H, W) -> (B, 1, HW, C)
            return t.reshape(b, c, h * w).transpose(1, 2).unsqueeze(1)

        out = F.scaled_dot_product_attention(
            tokens(self.q(hn)), tokens(self.k(hn)), tokens(self.v(hn))
        )
        out = out.squeeze(1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Pad one zero on the right and bottom, then a 3x3 stride-2 conv without padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2 upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: `block.*`, `attn.*` and `downsample` / `upsample` (official names),
    run in that order (a level has at most one of the two resamplers)."""

    downsample: nn.Module | None
    upsample: nn.Module | None

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        # plain attributes until a resampler is assigned (which registers it): absent from
        # the state dict when None
        self.downsample = None
        self.upsample = None

    def forward(self, h: Tensor) -> Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        if self.downsample is not None:
            h = self.downsample(h)
        if self.upsample is not None:
            h = self.upsample(h)
        return h


class _Mid(nn.Module):
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """conv_in, levels of ResnetBlocks with downsampling between them, middle, GN-SiLU-conv_out."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        ch, mult, nrb = cfg.ch, cfg.ch_mult, cfg.blocks_per_level()
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        res = cfg.resolution
        block_in = ch
        for i, m in enumerate(mult):
            level = _Level()
            block_in = ch * (1 if i == 0 else mult[i - 1])
            block_out = ch * m
            for _ in range(nrb[i]):
                level.block.append(ResnetBlock(block_in, block_out, cfg.dropout))
                block_in = block_out
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i != len(mult) - 1:
                level.downsample = Downsample(block_in)
                res //= 2
            self.down.append(level)
        self.mid = _Mid(block_in, cfg.dropout)
        self.norm_out = _norm(block_in)
        z_out = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
        self.conv_out = nn.Conv2d(block_in, z_out, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """conv_in, middle, levels coarsest first (`up.{i}` numbered by level), GN-SiLU-conv_out."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        ch, mult, nrb = cfg.ch, cfg.ch_mult, cfg.blocks_per_level()
        block_in = ch * mult[-1]
        res = cfg.resolution // 2 ** (len(mult) - 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(block_in, cfg.dropout)
        levels: list[_Level] = []
        for i in reversed(range(len(mult))):
            level = _Level()
            block_out = ch * mult[i]
            for _ in range(nrb[i] + 1):
                level.block.append(ResnetBlock(block_in, block_out, cfg.dropout))
                block_in = block_out
                if res in cfg.attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i != 0:
                level.upsample = Upsample(block_in)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest-codebook-row quantiser; holds `embedding.weight` (n_embed, embed_dim)."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Return (z + sg(e_k - z), k) with k = argmin_k |z|^2 + |e_k|^2 - 2 z.e_k per position.

        Distances are taken channel-last (b, h, w order); argmin keeps the first index on ties.
        Indices come back flattened over (b, h, w) as int64.
        """
        b, c, h, w = z.shape
        # Distances in float32 even under half precision, so code choices do not flip.
        zf = z.permute(0, 2, 3, 1).reshape(-1, c).float()
        e = self.embedding.weight
        ef = e.float()
        with torch.autocast(z.device.type, enabled=False):
            dist = (
                zf.pow(2).sum(dim=1, keepdim=True)
                + ef.pow(2).sum(dim=1)
                - 2.0 * torch.einsum("nd,kd->nk", zf, ef)
            )
        indices = torch.argmin(dist, dim=1)
        zq = F.embedding(indices, e).to(z.dtype).view(b, h, w, c).permute(0, 3, 1, 2)
        return z + (zq - z).detach(), indices


class VQAutoencoder(nn.Module):
    """VQModelTorch: encoder, decoder, quantize, quant_conv, post_quant_conv (official order)."""

    def __init__(self, cfg: VQConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # `quantize(z) -> (quant, indices)`: a module so that its key is quantize.embedding.weight.
        self.quantize = VectorQuantizer(cfg.n_embed, cfg.embed_dim)
        z_enc = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
        self.quant_conv = nn.Conv2d(z_enc, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    @property
    def factor(self) -> int:
        return self.cfg.factor

    def encode(self, x: Tensor) -> Tensor:
        """Continuous latent: quant_conv(encoder(x)), no quantisation."""
        return self.quant_conv(self.encoder(x))

    def decode(self, z: Tensor, force_not_quantize: bool = False) -> Tensor:
        """decoder(post_quant_conv(q(z))); `force_not_quantize` skips q."""
        if not force_not_quantize:
            z, _ = self.quantize(z)
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


# ----------------------------------------------------------------------------------------------
# Hyperparameters from a state dict's shapes.

_DOWN_BLOCK = re.compile(r"^encoder\.down\.(\d+)\.block\.(\d+)\.conv1\.weight$")
_DOWN_ATTN = re.compile(r"^encoder\.down\.(\d+)\.attn\.(\d+)\.q\.weight$")


def infer_vq_config(state_dict: dict[str, Tensor]) -> VQConfig:
    """Read every VQConfig field from tensor shapes (resolution and dropout are not stored).

    Resolution is taken from the preset with the same architecture, else 256 (f4) / 512;
    it only matters when attention runs at some level. Raises ValueError for non-VQ dicts.
    """
    required = (
        "quantize.embedding.weight",
        "encoder.conv_in.weight",
        "encoder.conv_out.weight",
        "decoder.conv_in.weight",
        "decoder.conv_out.weight",
        "quant_conv.weight",
    )
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise ValueError(f"not a VQ autoencoder state dict (no {', '.join(missing[:3])})")
    n_embed, embed_dim = state_dict["quantize.embedding.weight"].shape
    ch, in_channels = state_dict["encoder.conv_in.weight"].shape[:2]
    z_enc = state_dict["encoder.conv_out.weight"].shape[0]
    z_channels = state_dict["decoder.conv_in.weight"].shape[1]
    out_ch = state_dict["decoder.conv_out.weight"].shape[0]
    blocks: dict[int, int] = {}
    widths: dict[int, int] = {}
    attn_levels: set[int] = set()
    for key, value in state_dict.items():
        if m := _DOWN_BLOCK.match(key):
            lvl, j = int(m.group(1)), int(m.group(2))
            blocks[lvl] = max(blocks.get(lvl, 0), j + 1)
            if j == 0:
                widths[lvl] = value.shape[0]
        elif m := _DOWN_ATTN.match(key):
            attn_levels.add(int(m.group(1)))
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise ValueError("not a VQ autoencoder state dict (encoder levels are missing)")
    levels = len(blocks)
    if any(widths[i] % ch for i in range(levels)):
        raise ValueError("VQ state dict: level widths are not multiples of ch")
    ch_mult = tuple(widths[i] // ch for i in range(levels))
    nrb_list = tuple(blocks[i] for i in range(levels))
    nrb: int | tuple[int, ...] = nrb_list[0] if len(set(nrb_list)) == 1 else nrb_list
    if z_enc not in (z_channels, 2 * z_channels):
        raise ValueError(
            f"VQ state dict: encoder gives {z_enc} channels, decoder takes {z_channels}"
        )
    cfg = VQConfig(
        embed_dim=int(embed_dim),
        n_embed=int(n_embed),
        z_channels=int(z_channels),
        resolution=256 if levels <= 3 else 512,
        in_channels=int(in_channels),
        out_ch=int(out_ch),
        ch=int(ch),
        ch_mult=ch_mult,
        num_res_blocks=nrb,
        double_z=z_enc == 2 * z_channels and z_enc != z_channels,
    )
    for preset in VQ_PRESETS.values():
        if replace(preset, resolution=cfg.resolution) == cfg:
            cfg = replace(cfg, resolution=preset.resolution)
            break
    if attn_levels:
        cfg = replace(
            cfg, attn_resolutions=tuple(cfg.resolution // 2**i for i in sorted(attn_levels))
        )
    return cfg
