"""The parts of upscaling that need no torch, shared by the torch and onnxruntime backends:
the options, and turning blended output rows into the output picture's pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tadsr.inference.imageio import DEFAULT_MAX_PIXELS, Picture

__all__ = ["COLOR_FIXES", "LUMA_WEIGHTS", "UpscaleOptions", "RowWriter"]

COLOR_FIXES = ("none", "wavelet", "adain")
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


@dataclass
class UpscaleOptions:
    """Options shared by `Upscaler` and `tadsr upscale` (LR pixels for the tile sizes).

    tile: None = automatic (256 on CPU, from free memory on CUDA; small images untiled),
    0 = never tile. tile_pad: context around each tile (None = the model's receptive halo).
    seed: None = fresh noise each call. outscale: final scale (None = the model's, 4).
    noise_rng: "torch" or "numpy", the generator of the noise blocks (`BlockNoise`); the
    onnxruntime backend always draws with numpy, so "numpy" gives both backends one sample.
    """

    tile: int | None = None
    tile_overlap: int = 16
    tile_pad: int | None = None
    seed: int | None = 0
    outscale: float | None = None
    color_fix: str = "none"
    steps: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    progress: bool = False
    noise_rng: str = "torch"

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        if self.tile is not None and self.tile < 0:
            raise ValueError(f"tile must be >= 0 (0 = no tiling), got {self.tile}")
        if self.tile_overlap < 0:
            raise ValueError(f"tile overlap must be >= 0, got {self.tile_overlap}")
        if self.tile and self.tile_overlap >= self.tile:
            raise ValueError(
                f"tile overlap {self.tile_overlap} must be smaller than the tile {self.tile}"
            )
        if self.tile_pad is not None and self.tile_pad < 0:
            raise ValueError(f"tile pad must be >= 0, got {self.tile_pad}")
        if self.outscale is not None and not (
            0 < self.outscale <= 64 and math.isfinite(self.outscale)
        ):
            raise ValueError(f"outscale must be in (0, 64], got {self.outscale}")
        if self.color_fix not in COLOR_FIXES:
            raise ValueError(
                f"color fix must be one of {', '.join(COLOR_FIXES)}, got {self.color_fix!r}"
            )
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.noise_rng not in ("torch", "numpy"):
            raise ValueError(f"noise rng must be 'torch' or 'numpy', got {self.noise_rng!r}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max pixels must be >= 1, got {self.max_pixels}")


class RowWriter:
    """A `run_tiled` sink: rows in [-1, 1] (3, n, W) float32 -> the output array of `pic`'s
    depth, gray turned back into one channel with the BT.601 luma weights."""

    def __init__(self, pic: Picture, scale: int) -> None:
        self.pic = pic
        self.out = np.empty(
            (pic.height * scale, pic.width * scale, pic.color.shape[2]), pic.color.dtype
        )
        self._luma = np.asarray(LUMA_WEIGHTS, np.float32).reshape(3, 1, 1)

    def __call__(self, row: int, rows: np.ndarray) -> None:
        pic = self.pic
        if pic.gray:
            rows = (rows * self._luma).sum(0, keepdims=True)
        if pic.bits == 32:
            x = np.clip((rows + 1.0) * 0.5, 0.0, 1.0)
        else:  # [-1, 1] -> 0..max
            half = np.float32(pic.max_value / 2)
            x = rows * half
            x += half
            np.rint(x, out=x)
            np.clip(x, 0, pic.max_value, out=x)
        self.out[row : row + x.shape[1]] = x.transpose(1, 2, 0)
