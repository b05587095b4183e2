"""Overlapping tiles in low-resolution pixel space, blended with a raised-cosine window.

An image of H x W LR pixels is covered by tiles of at most `tile` pixels that overlap by at
least `overlap`. Each tile is run with `halo` extra pixels of context on every side (the
window shifted inward at the image border, so all windows have one size) and its output is
cropped back to the tile. Outputs are blended as

    out(p) = sum_k w_k(p) * sr_k(p) / sum_k w_k(p),    w_k(y, x) = r_k(y) * r_k(x),

where r_k rises as sin^2 over the overlap with the previous tile and falls as cos^2 over
the overlap with the next one (flat 1 at the image border), so the weights of two
neighbours add up to one and no seam is left. Tiles are processed one row at a time and the
rows of output that no later tile touches are handed to `sink` at once (in slices of
SINK_ROWS), so memory holds one band of float32 output, never the whole canvas.

The blending works on numpy arrays and imports no torch, so that the onnxruntime backend
tiles exactly like the torch one: a tile function may return a torch tensor or an array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BlockNoise",
    "stream_seed",
    "TileSpec",
    "auto_tile_size",
    "blend_ramp",
    "run_tiled",
    "tile_spans",
    "upscale_tiled",
]

SINK_ROWS = 128  # finished output rows handed to the sink at a time
TileFn = Callable[[Any, Any], Any]  # (lq window, noise window) -> sr window
Sink = Callable[[int, np.ndarray], None]


@dataclass(frozen=True)
class TileSpec:
    """One tile: the core [y0, y1) x [x0, x1) it contributes and the window it is run on."""

    y0: int
    y1: int
    x0: int
    x1: int
    wy0: int
    wy1: int
    wx0: int
    wx1: int


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Cover [0, length) with equal spans of at most `tile`, overlapping by at least `overlap`.

    One span when the tile covers everything; otherwise the fewest spans that can do it,
    n = ceil((L - o) / (t - o)), each shrunk to t' = ceil((L + (n - 1) o) / n) so that no
    more is computed than needed, with starts spread evenly from 0 to L - t'.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got {tile}, {overlap}")
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (n - 1) * overlap) / n))
    starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
    return [(s, s + size) for s in starts]


def blend_ramp(size: int, rise: int, fall: int) -> np.ndarray:
    """1-D float32 weights over `size`: sin^2 rise over the first `rise`, cos^2 fall over the
    last `fall`. Values are strictly positive, so every output pixel has a non-zero weight sum.
    """
    w = np.ones(size, dtype=np.float32)
    if rise > 0:
        i = np.arange(rise, dtype=np.float32)
        w[:rise] = np.sin(np.float32(0.5 * math.pi) * (i + 0.5) / rise) ** 2
    if fall > 0:
        i = np.arange(fall, dtype=np.float32)
        w[size - fall :] *= np.cos(np.float32(0.5 * math.pi) * (i + 0.5) / fall) ** 2
    return w


def _window(a: int, b: int, halo: int, length: int) -> tuple[int, int]:
    """The span [a, b) with `halo` of context each side, shifted inward at the image border.

    Every window of an axis thus has the same size, min(length, b - a + 2 * halo): the network
    sees one input shape (no per-shape caches piling up) and a border tile gets more context.
    """
    size = min(length, b - a + 2 * halo)
    start = min(max(0, a - halo), length - size)
    return start, start + size


def _axis_ramps(spans: list[tuple[int, int]], scale: int) -> list[np.ndarray]:
    ramps = []
    for k, (a, b) in enumerate(spans):
        rise = (spans[k - 1][1] - a) * scale if k > 0 else 0
        fall = (b - spans[k + 1][0]) * scale if k + 1 < len(spans) else 0
        ramps.append(blend_ramp((b - a) * scale, max(rise, 0), max(fall, 0)))
    return ramps


def auto_tile_size(device: Any, height: int, width: int) -> int:
    """A tile size (LR pixels) that bounds memory: 256 on CPU / MPS, from free memory on CUDA.

    Returns 0 (no tiling) when the whole image fits in one tile.
    """
    tile = 256
    if str(device).startswith("cuda"):
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(device)
            # ~4 GiB of free memory for a 256-pixel tile; memory grows with the tile area.
            tile = int(256 * math.sqrt(max(free, 1) / 4 / 2**30))
            tile = max(128, min(1024, tile // 64 * 64))
        except Exception:  # pragma: no cover - any CUDA query failure keeps the default
            tile = 256
    # never tile an image that one tile (with a little slack) covers
    return 0 if max(height, width) <= tile * 5 // 4 else tile


def stream_seed(seed: int, *key: int) -> int:
    """A torch seed for stream `key` of `seed`: independent streams for the prior noise's
    blocks and a teacher's per-step noise (seeding them all with `seed` itself made block
    (0, 0) and the first step's noise the same numbers, which degraded 15-step samples)."""
    entropy = [int(v) % 2**64 for v in (seed, *key)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


class BlockNoise:
    """Standard normal noise over a (1, C, H, W) latent, made on demand in fixed blocks.

    Block (i, j) is drawn from its own generator seeded by (seed, i, j), so any window is the
    same whichever tiles ask for it, and the whole tensor (48 x 2048 x 2048 floats = 805 MB for
    a 2048-pixel image with the pixel-unshuffle codec) never has to exist at once.

    Every block is drawn with numpy's PCG64 on the host, whatever the backend: the torch
    backend and the onnxruntime backend (which never imports torch) are fed the same noise,
    so one seed gives both the same picture.
    """

    def __init__(self, shape: tuple[int, int, int, int], seed: int, block: int = 64) -> None:
        if shape[0] != 1:
            raise ValueError(f"BlockNoise makes one image's noise, got batch {shape[0]}")
        self.shape = tuple(int(v) for v in shape)
        self.seed = int(seed)
        self.block = int(block)

    def _rng(self, i: int, j: int) -> np.random.Generator:
        return np.random.default_rng(stream_seed(self.seed, 0, i, j))

    def _block(self, i: int, j: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The next C channels of block (i, j)'s stream: its first C from a fresh generator."""
        b, (c, h, w) = self.block, self.shape[1:]
        bh, bw = min(b, h - i * b), min(b, w - j * b)
        rng = self._rng(i, j) if rng is None else rng
        return rng.standard_normal((c, bh, bw), dtype=np.float32)

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Noise of latent rows [y0, y1) and columns [x0, x1): float32 (1, C, y1 - y0, x1 - x0)."""
        return self._assemble(y0, y1, x0, x1, self._block)

    def _assemble(self, y0: int, y1: int, x0: int, x1: int, block) -> np.ndarray:
        b = self.block
        out = np.empty((1, self.shape[1], y1 - y0, x1 - x0), np.float32)
        for i in range(y0 // b, (y1 - 1) // b + 1):
            for j in range(x0 // b, (x1 - 1) // b + 1):
                blk = block(i, j)
                # block (i, j) covers rows [i b, i b + bh) and columns [j b, j b + bw)
                ya, yb = max(y0, i * b), min(y1, i * b + blk.shape[1])
                xa, xb = max(x0, j * b), min(x1, j * b + blk.shape[2])
                out[0, :, ya - y0 : yb - y0, xa - x0 : xb - x0] = blk[
                    :, ya - i * b : yb - i * b, xa - j * b : xb - j * b
                ]
        return out

    def full(self) -> np.ndarray:
        return self.window(0, self.shape[2], 0, self.shape[3])

    def stepped(self) -> SteppedNoise:
        """This noise as a source whose windows also give each sampling step's noise."""
        return SteppedNoise(self)


class NoiseWindow:
    """One window of a `BlockNoise` as a stream of C-channel groups: group 0 is the window of
    the BlockNoise itself (the prior noise), group k + 1 the next C channels of every block's
    stream (the noise of sampling step k), drawn when asked for, in order. Group k is thus
    channels [kC, (k+1)C) of a BlockNoise with more channels: no caller has to know how
    many steps a sampler draws noise for, and no window holds more than one group."""

    def __init__(self, noise: BlockNoise, y0: int, y1: int, x0: int, x1: int) -> None:
        self.noise, self.box = noise, (y0, y1, x0, x1)
        self._rngs: dict[tuple[int, int], np.random.Generator] = {}
        self._drawn, self._last = 0, np.empty(0, np.float32)
        self.prior = self.group(0)
        self.shape = self.prior.shape

    def _next_block(self, i: int, j: int) -> np.ndarray:
        rng = self._rngs.get((i, j))
        if rng is None:
            rng = self._rngs[(i, j)] = self.noise._rng(i, j)
        return self.noise._block(i, j, rng)

    def group(self, k: int) -> np.ndarray:
        """Group k, float32 (1, C, h, w): groups are drawn in order (the last one is kept)."""
        if k < self._drawn - 1:
            raise ValueError(f"noise group {k} was drawn already (the last is {self._drawn - 1})")
        while self._drawn <= k:
            self._last = self.noise._assemble(*self.box, self._next_block)
            self._drawn += 1
        return self._last

    def step(self, i: int, _shape=None) -> np.ndarray:
        """The noise of sampling step i (a sampler's `step_noise(i, shape)`)."""
        return self.group(i + 1)


class SteppedNoise:
    """A `BlockNoise` whose windows are `NoiseWindow`s (prior noise + noise per step)."""

    def __init__(self, noise: BlockNoise) -> None:
        self.noise, self.shape = noise, noise.shape

    def window(self, y0: int, y1: int, x0: int, x1: int) -> NoiseWindow:
        return NoiseWindow(self.noise, y0, y1, x0, x1)


NoiseSource = Any  # a (1, C, H, W) tensor / array, a BlockNoise or a SteppedNoise


def _as_array(x: Any) -> np.ndarray:
    """A tile's output as a float32 array (a torch tensor is moved to the CPU first)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _slice_noise(noise: NoiseSource | None, spec: TileSpec, h: int, w: int) -> Any:
    """The noise under a tile's window (latent coordinates = LR coordinates * latent/LR)."""
    if noise is None:
        return None
    nh, nw = noise.shape[-2:]
    if (nh, nw) == (h, w):
        y0, y1, x0, x1 = spec.wy0, spec.wy1, spec.wx0, spec.wx1
    else:
        ry, rx = nh / h, nw / w
        y0, y1 = math.floor(spec.wy0 * ry), math.ceil(spec.wy1 * ry)
        x0, x1 = math.floor(spec.wx0 * rx), math.ceil(spec.wx1 * rx)
    if isinstance(noise, (BlockNoise, SteppedNoise)):
        return noise.window(y0, y1, x0, x1)
    return noise[..., y0:y1, x0:x1]


def run_tiled(
    fn: TileFn,
    lq: Any,
    *,
    scale: int,
    sink: Sink,
    tile: int = 0,
    overlap: int = 16,
    halo: int = 16,
    noise: NoiseSource | None = None,
    on_tile: Callable[[], object] | None = None,
) -> int:
    """Run `fn(lq_window, noise_window) -> sr_window` over tiles of `lq` (1, C, H, W).

    `lq` and the noise may be torch tensors or numpy arrays (windows are slices of them);
    `sr_window` is (1, C', scale*h, scale*w), a tensor or an array; finished rows of the
    blended output are passed to `sink(row0, rows)` in order, rows a float32 array
    (C', n, scale*W). tile 0 = one tile. Returns the number of tiles.
    """
    if lq.ndim != 4 or lq.shape[0] != 1:
        raise ValueError(f"expected a (1, C, H, W) image, got {tuple(lq.shape)}")
    h, w = lq.shape[-2:]
    if tile <= 0:
        ys, xs = [(0, h)], [(0, w)]
    else:
        overlap = min(overlap, tile - 1)
        ys, xs = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    if len(ys) == 1 and len(xs) == 1:  # one tile: nothing to blend
        sr = _as_array(fn(lq, _slice_noise(noise, TileSpec(0, h, 0, w, 0, h, 0, w), h, w))[0])
        for k in range(0, sr.shape[1], SINK_ROWS):
            sink(k, sr[:, k : k + SINK_ROWS])
        if on_tile is not None:
            on_tile()
        return 1
    ramps_y, ramps_x = _axis_ramps(ys, scale), _axis_ramps(xs, scale)
    out_w = w * scale
    acc: np.ndarray | None = None  # float32 (C', rows, out_w), rows from acc_start
    wsum: np.ndarray | None = None
    acc_start = 0
    for r, (y0, y1) in enumerate(ys):
        band_end = y1 * scale
        if acc is not None and band_end > acc_start + acc.shape[1]:
            grow = band_end - acc_start - acc.shape[1]
            acc = np.concatenate([acc, np.zeros((acc.shape[0], grow, out_w), np.float32)], 1)
            wsum = np.concatenate([wsum, np.zeros((grow, out_w), np.float32)], 0)
        for c, (x0, x1) in enumerate(xs):
            spec = TileSpec(y0, y1, x0, x1, *_window(y0, y1, halo, h), *_window(x0, x1, halo, w))
            window = lq[..., spec.wy0 : spec.wy1, spec.wx0 : spec.wx1]
            sr = fn(window, _slice_noise(noise, spec, h, w))
            oy, ox = (y0 - spec.wy0) * scale, (x0 - spec.wx0) * scale
            sr = _as_array(sr[0, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale])
            if acc is None or wsum is None:
                acc = np.zeros((sr.shape[0], band_end, out_w), np.float32)
                wsum = np.zeros((band_end, out_w), np.float32)
            wt = ramps_y[r][:, None] * ramps_x[c][None, :]
            ry = slice(y0 * scale - acc_start, y1 * scale - acc_start)
            rx = slice(x0 * scale, x1 * scale)
            acc[:, ry, rx] += sr * wt
            wsum[ry, rx] += wt
            if on_tile is not None:
                on_tile()
        assert acc is not None and wsum is not None  # made by the row's first tile
        # rows above the next tile row are final
        done = ys[r + 1][0] * scale if r + 1 < len(ys) else h * scale
        n = done - acc_start
        for k in range(0, max(n, 0), SINK_ROWS):  # in slices, to keep temporaries small
            m = min(SINK_ROWS, n - k)
            sink(acc_start + k, acc[:, k : k + m] / wsum[k : k + m])
        if n > 0:
            acc, wsum = acc[:, n:].copy(), wsum[n:].copy()
            acc_start = done
    return len(ys) * len(xs)


def upscale_tiled(fn: TileFn, lq: Any, *, scale: int, **kwargs) -> Any:
    """run_tiled collected into one (1, C', scale*H, scale*W) float32 tensor (an array when
    `lq` is an array)."""
    parts: list[np.ndarray] = []

    def sink(_row: int, rows: np.ndarray) -> None:
        parts.append(rows.copy())

    run_tiled(fn, lq, scale=scale, sink=sink, **kwargs)
    out = np.concatenate(parts, axis=1)[None]
    if isinstance(lq, np.ndarray):
        return out
    import torch

    return torch.from_numpy(out)
