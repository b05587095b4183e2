"""The parts of upscaling that need no torch, shared by the torch and onnxruntime backends
(so `tadsr upscale --help`, the option checks and `--backend onnxruntime` start fast): the
options, and turning blended output rows into the output picture's pixels (`RowWriter`).

`UpscaleOptions` is the one source of the upscale options' defaults, choices and help:
`Upscaler(**options)` and `tadsr upscale` share it (`tadsr.commands.upscale` generates the
command's flags from the fields' metadata, `--tile-overlap` from `tile_overlap`, and reads
them back), and every rule is checked once, in `validate()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tadsr.inference.imageio import DEFAULT_MAX_PIXELS, Picture

__all__ = [
    "COLOR_FIXES",
    "LUMA_WEIGHTS",
    "RowWriter",
    "UpscaleOptions",
    "output_tag",
    "steps_error",
]

COLOR_FIXES = ("none", "wavelet", "adain")
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def _option(default: Any, help: str, **argparse_kw: Any) -> Any:
    """A field with its command-line form (`flag=None`: an API-only option)."""
    return field(default=default, metadata={"help": help, **argparse_kw})


@dataclass
class UpscaleOptions:
    """Options shared by `Upscaler` and `tadsr upscale` (LR pixels for the tile sizes)."""

    steps: int | None = _option(
        None, "sampling steps of a teacher model (default: the model's own)", metavar="N"
    )
    tile: int | None = _option(
        None,
        "tile size in LR pixels (default: automatic, bounded memory; 0: never tile)",
        metavar="N",
    )
    tile_overlap: int = _option(
        16, "overlap of neighbouring tiles in LR pixels (default 16)", metavar="N"
    )
    tile_pad: int | None = _option(
        None,
        "context around each tile in LR pixels (default: the model's receptive halo)",
        metavar="N",
    )
    seed: int | None = _option(0, "noise seed (default 0)")  # None (API only): fresh noise
    outscale: float | None = _option(
        None,
        "final scale, e.g. 2 or 3: the x4 result is resized to it (antialiased bicubic; "
        "default 4)",
        metavar="S",
        type=float,
    )
    width: int | None = _option(
        None,
        "final width in pixels, the height in proportion: the x4 result is resized to it "
        "(instead of --outscale)",
        metavar="W",
    )
    color_fix: str = _option(
        "none", "colour correction against the input (default none)", choices=COLOR_FIXES
    )
    max_pixels: int | None = _option(
        DEFAULT_MAX_PIXELS,
        f"refuse inputs with more pixels (default {DEFAULT_MAX_PIXELS:,})",
        metavar="N",
    )
    progress: bool = _option(False, "progress bar over the tiles", flag=None)
    # the fidelity dial's F (0 .. 1 or "auto") for a pipeline loaded with a dial
    # (`Upscaler.from_pretrained(..., fidelity=)`); None: the F it was loaded with
    fidelity: float | str | None = _option(None, "fidelity", flag=None)

    def validate(self, kind: str | None = None, max_steps: int | None = None) -> None:
        """Raise ValueError naming the first bad option; with the model's `kind` and
        `max_steps` (its trained number of steps), the options that depend on it too."""
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
        if self.width is not None and not 1 <= self.width <= 65536:
            raise ValueError(f"width must be 1 to 65536 pixels, got {self.width}")
        if self.width is not None and self.outscale is not None:
            raise ValueError("give outscale or width, not both")
        if self.color_fix not in COLOR_FIXES:
            raise ValueError(
                f"color fix must be one of {', '.join(COLOR_FIXES)}, got {self.color_fix!r}"
            )
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max pixels must be >= 1, got {self.max_pixels}")
        from tadsr.models.fidelity import parse_fidelity

        self.fidelity = parse_fidelity(self.fidelity)
        why = steps_error(self.steps, kind, max_steps)
        if why:
            raise ValueError(why)


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


def steps_error(steps: int | None, kind: str | None, max_steps: int | None) -> str | None:
    """Why `steps` does not suit a model (None when it does): a student runs one step, a
    teacher 1 to its trained number of steps."""
    if steps is None:
        return None
    if steps < 1:
        return f"steps must be >= 1, got {steps}"
    if kind == "student" and steps != 1:
        return f"steps {steps}: the one-step student runs in one step (steps is for a teacher)"
    if kind == "teacher" and max_steps is not None and steps > max_steps:
        return (
            f"steps {steps}: this teacher was trained with {max_steps} steps; "
            f"choose 1 to {max_steps}"
        )
    return None


def output_tag(outscale: float | None, width: int | None = None) -> str:
    """The name part that tells the output's size: x4, x<outscale> or w<width>."""
    if width is not None:
        return f"w{width}"
    return f"x{outscale:g}" if outscale is not None else "x4"
