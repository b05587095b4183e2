"""Swin transformer layer of ResShift's UNet (``models/swin_transformer.py`` behaviour).

Works on NCHW maps: 1x1 conv in -> ``depth`` blocks -> 1x1 conv out, with **no residual
around the layer**. Each block is x + W-MSA(GN(x)), then x + MLP(GN(x)) with a 1x1-conv
MLP and exact GELU. Odd blocks use shifted windows (roll by -w/2) with the official
attention mask, which labels tokens by the *column inside the window* (see
``shift_labels``); window size and shift are fixed at construction from the level's
resolution. Attention runs through ``F.scaled_dot_product_attention`` with the relative
position bias and the mask as one additive ``attn_mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadsr.nets.blocks import GroupNorm32

MASK_VALUE = -100.0


def relative_position_index(window: int) -> Tensor:
    """(w², w²) int64 index into the ((2w-1)², heads) bias table (standard Swin).

    For tokens i = (r1, c1), j = (r2, c2) in row-major order:
    index = (r1 - r2 + w - 1)(2w - 1) + (c1 - c2 + w - 1).
    """
    r = torch.arange(window).repeat_interleave(window)
    c = torch.arange(window).repeat(window)
    dr = r[:, None] - r[None, :] + window - 1
    dc = c[:, None] - c[None, :] + window - 1
    return dr * (2 * window - 1) + dc


def shift_labels(height: int, window: int, shift: int) -> Tensor:
    """Region label of every token, per window row: (height // window, w²) int64.

    Official quirk: a token at in-window position (r, c) of window row wr is labelled by the
    band of the index wr·w + c (column, not row) with band 0 below H - w, 1 below H - s,
    2 otherwise. The window column and r play no role; W does not matter.
    """
    n_rows = height // window
    c = torch.arange(window).repeat(window)  # column of each row-major token
    idx = torch.arange(n_rows)[:, None] * window + c[None, :]
    return (idx >= height - window).long() + (idx >= height - shift).long()


def shift_mask(height: int, width: int, window: int, shift: int) -> Tensor:
    """Additive mask (nW, w², w²) float32: -100 between tokens of different labels, else 0."""
    lab = shift_labels(height, window, shift)
    rows = (lab[:, :, None] != lab[:, None, :]).float() * MASK_VALUE  # (nWr, N, N)
    n_cols = width // window
    return rows[:, None].expand(-1, n_cols, -1, -1).reshape(-1, *rows.shape[1:]).contiguous()


def shift_mask_from_counts(n_rows: Tensor | int, n_cols: Tensor | int, window: int, shift: int):
    """`shift_mask` from the window counts with tensor ops only, so that an ONNX trace keeps
    them as graph values (a mask built from Python ints would be frozen at the traced size).

    By `shift_labels`, only the last window row has non-zero labels (1 + [c >= w - s] for
    in-window column c), so the mask is one (N, N) pattern on the last row, zeros above.
    """
    c = torch.arange(window).repeat(window)
    lab = 1 + (c >= window - shift).long()
    last = (lab[:, None] != lab[None, :]).float() * MASK_VALUE  # (N, N)
    # under an ONNX trace the counts are 0-dim tensors, which arange and expand take (their
    # stubs say int only)
    rows = torch.arange(n_rows) == n_rows - 1  # type: ignore[arg-type]  # (nWr,)
    n = window * window
    mask = rows.float()[:, None, None, None] * last  # (nWr, 1, N, N)
    return mask.expand(-1, n_cols, -1, -1).reshape(-1, n, n)  # type: ignore[arg-type]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a relative position bias (keys: official)."""

    relative_position_index: Tensor

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Swin embed dim {dim} is not divisible by {num_heads} heads")
        self.window = window
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """(heads, w², w²) bias gathered from the table."""
        n = self.window * self.window
        idx = self.relative_position_index.reshape(-1)
        table = self.relative_position_bias_table
        return table.index_select(0, idx).reshape(n, n, -1).permute(2, 0, 1)

    def forward(self, tokens: Tensor, mask: Tensor | None) -> Tensor:
        """tokens (B, nW, N, C); mask (nW, N, N) additive or None -> (B, nW, N, C).

        softmax(q k^T / sqrt(d) + B_rel + M) v per window and head. The windows are folded
        into the batch (no mask) or into the head axis (mask), so that the additive mask
        stays 4-D and broadcast over the batch: the fused CPU kernel accepts that layout.
        """
        b, nw, n, c = tokens.shape
        heads = self.num_heads
        qkv = self.qkv(tokens).reshape(b, nw, n, 3, heads, c // heads)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5)  # (3, B, nW, heads, N, d)
        bias = self.position_bias().to(qkv.dtype)[None]  # (1, heads, N, N)
        if mask is None:
            q, k, v = qkv.reshape(3, b * nw, heads, n, c // heads).unbind(0)
        else:
            q, k, v = qkv.reshape(3, b, nw * heads, n, c // heads).unbind(0)
            bias = (bias + mask[:, None].to(qkv.dtype)).reshape(1, nw * heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.reshape(b, nw, heads, n, c // heads).transpose(2, 3).reshape(b, nw, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    """1x1 conv (dim -> hidden), exact GELU, 1x1 conv (hidden -> dim)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """One (shifted-)window transformer block on NCHW maps.

    ``resolution`` is the map size known at construction: if it is <= ``window`` the block
    uses window = resolution and no shift (official rule). Shifted blocks carry the
    official ``attn_mask`` buffer (for that resolution) in the state dict, but the forward
    always uses a mask computed (and cached) for the actual map size.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int,
        shift: int,
        resolution: int,
        mlp_ratio: float = 4.0,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if resolution <= window:
            window, shift = resolution, 0
        if not 0 <= shift < window:
            raise ValueError(f"Swin shift {shift} must lie in [0, window {window})")
        self.window = window
        self.shift = shift
        if shift > 0:
            self.register_buffer("attn_mask", shift_mask(resolution, resolution, window, shift))
        else:
            self.attn_mask = None
        self.norm1 = GroupNorm32(norm_groups, dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = GroupNorm32(norm_groups, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self._mask_cache: dict[tuple[int, int, str], Tensor] = {}

    def _runtime_mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        if self.shift == 0:
            return None
        if torch.jit.is_tracing():  # an ONNX export: sizes are graph values, no cache
            return shift_mask_from_counts(h // self.window, w // self.window, self.window,
                                          self.shift)  # fmt: skip
        key = (h, w, str(device))
        mask = self._mask_cache.get(key)
        if mask is None:
            if len(self._mask_cache) >= 16:  # bounded: a few run-time sizes are typical
                self._mask_cache.clear()
            mask = shift_mask(h, w, self.window, self.shift).to(device)
            self._mask_cache[key] = mask
        return mask

    def _attention(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        ws, s = self.window, self.shift
        if h % ws or w % ws:
            raise ValueError(
                f"Swin block: map {h}x{w} is not a multiple of its window {ws} "
                "(pad the input to SwinUNet.size_multiple)"
            )
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(2, 3))
        nh, nw = h // ws, w // ws
        # windows from the (B, H, W, C) view: one copy when x is channels-last (the CPU
        # default), and the result comes back channels-last as well
        tokens = x.permute(0, 2, 3, 1).reshape(b, nh, ws, nw, ws, c).permute(0, 1, 3, 2, 4, 5)
        tokens = tokens.reshape(b, nh * nw, ws * ws, c)
        out = self.attn(tokens, self._runtime_mask(h, w, x.device))
        out = out.reshape(b, nh, nw, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        out = out.permute(0, 3, 1, 2)
        if s:
            out = torch.roll(out, shifts=(s, s), dims=(2, 3))
        return out

    def forward(self, x: Tensor) -> Tensor:
        x = x + self._attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _Conv1x1(nn.Module):
    """Holder that gives the official ``patch_embed.proj`` / ``patch_unembed.proj`` keys."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class SwinLayer(nn.Module):
    """ResShift ``BasicLayer`` with patch size 1 and no patch norm: conv -> blocks -> conv."""

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        num_heads: int,
        window: int,
        depth: int,
        resolution: int,
        mlp_ratio: float = 4.0,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        self.patch_embed = _Conv1x1(in_channels, embed_dim)
        self.patch_unembed = _Conv1x1(embed_dim, in_channels)
        blocks = [
            SwinBlock(
                embed_dim,
                num_heads,
                window,
                0 if i % 2 == 0 else window // 2,
                resolution,
                mlp_ratio,
                norm_groups,
            )
            for i in range(depth)
        ]
        self.blocks = nn.ModuleList(blocks)
        self._size_multiple = max((blk.window for blk in blocks), default=1)

    @property
    def size_multiple(self) -> int:
        """Map sizes this layer accepts are multiples of this (its largest window)."""
        return self._size_multiple

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for blk in self.blocks:
            x = blk(x)
        return self.patch_unembed(x)
