"""What the page shows of a result without loading it whole: the bicubic comparison, and
downscaled copies (a preview that fits a screen, a thumbnail for the history).

A 4000 x 3500 result is a 17 MB PNG; the page shows the previews (WebP, a few hundred kB)
until it is zoomed past their resolution, and the full files only then or on download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tadsr.inference.imageio import Picture, picture_to_pil, to_uint8

__all__ = ["PREVIEW_SIDE", "THUMB_SIDE", "bicubic_of", "write_previews"]

PREVIEW_SIDE = 1600  # longest side of the compare view's preview images
THUMB_SIDE = 160  # longest side of a history thumbnail


def bicubic_of(pic: Picture, height: int, width: int) -> Picture:
    """The input resized bicubically to the result's size (the compare view's "before")."""
    from tadsr.inference.upscaler import _resize_plane

    planes = [_resize_plane(pic.color[..., c], height, width) for c in range(pic.color.shape[2])]
    alpha = None if pic.alpha is None else _resize_plane(pic.alpha, height, width)
    return Picture(np.stack(planes, axis=2), alpha)


def _shrunk(pic: Picture, side: int):
    from PIL import Image

    img = picture_to_pil(to_uint8(pic))
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img


def write_previews(stem: Path, result: Picture, bicubic: Picture) -> dict[str, Path]:
    """{"preview", "preview-bicubic", "thumb"} -> WebP files named from `stem`; the previews
    only when the result is larger than PREVIEW_SIDE (else the page shows the files)."""
    out: dict[str, Path] = {}
    wanted = [("thumb", result, THUMB_SIDE)]
    if max(result.height, result.width) > PREVIEW_SIDE:
        wanted += [("preview", result, PREVIEW_SIDE), ("preview-bicubic", bicubic, PREVIEW_SIDE)]
    for name, pic, side in wanted:
        path = stem.with_name(f"{stem.name}-{name}.webp")
        _shrunk(pic, side).save(path, format="WEBP", quality=85)
        out[name] = path
    return out
