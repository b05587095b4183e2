"""Real JPEG compression of a batch (Pillow / libjpeg encode + decode, one image at a time)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode an (H,W,3) uint8 image as JPEG at ``quality`` (4:2:0) and decode it."""
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def jpeg_compress(x: torch.Tensor, quality: torch.Tensor | list[float] | float) -> torch.Tensor:
    """JPEG-compress each image of ``x`` (B,3,H,W in [0,1]) at its own quality (1-100).

    Qualities are rounded to integers (libjpeg's quality is an integer); the result is on the
    8-bit grid, on ``x``'s device and dtype.
    """
    b = x.shape[0]
    if isinstance(quality, (int, float)):
        qs = [float(quality)] * b
    else:
        qs = [float(q) for q in (quality.tolist() if torch.is_tensor(quality) else quality)]
    if len(qs) != b:
        raise ValueError(f"jpeg_compress: {len(qs)} qualities for a batch of {b}")
    x8 = (x.detach().clamp(0, 1) * 255).round_().to(torch.uint8)
    arr = x8.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    out = np.empty_like(arr)
    for i, q in enumerate(qs):
        out[i] = jpeg_roundtrip(arr[i], int(min(100, max(1, round(q)))))
    y = torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2)
    return y.to(x.dtype) / 255.0
