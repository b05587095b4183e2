"""In-run validation: sample the first validation pairs with the EMA weights, mean PSNR-Y /
SSIM-Y against HR, and a grid of (LR, SR, HR) rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.pipeline import SRPipeline


def to_uint8(img: Tensor) -> np.ndarray:
    """(3,H,W) in [-1, 1] -> HxWx3 uint8."""
    x = ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def validate(
    net, codec, process, *, scale: int, kind: str, data, png: Path | None = None, seed: int = 0
) -> dict:
    """Sample the first `data.val_count` validation pairs with `net` (the EMA weights);
    mean PSNR-Y / SSIM-Y against HR, and a grid of (LR, SR, HR) written to `png`."""
    from PIL import Image

    from tadsr.data.datasets import PairedFolderDataset
    from tadsr.evaluation.fullref import psnr_y, ssim_y

    val_dir = Path(data.val_pairs)
    if data.val_count <= 0 or not (val_dir / "lr").is_dir():
        return {}
    pipeline = SRPipeline(
        net, codec, process, scale=scale, kind=kind, device=next(net.parameters()).device
    )
    ds = PairedFolderDataset(val_dir / "lr", val_dir / "hr")
    psnrs: list[float] = []
    ssims: list[float] = []
    tiles: list[np.ndarray] = []
    for i in range(min(data.val_count, len(ds))):
        lr, hr, _ = ds[i]
        g = torch.Generator().manual_seed(seed + i)
        sr = pipeline(lr[None] * 2 - 1, generator=g)[0]
        a, b = to_uint8(sr), to_uint8(hr * 2 - 1)
        psnrs.append(psnr_y(a, b))
        ssims.append(ssim_y(a, b))
        if len(tiles) < 4:
            up = F.interpolate(lr[None], scale_factor=4, mode="nearest")[0] * 2 - 1
            tiles.append(np.concatenate([to_uint8(up), a, b], axis=1))
    if png is not None and tiles:
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(tiles, axis=0)).save(png)
    return {"psnr_y": float(np.mean(psnrs)), "ssim_y": float(np.mean(ssims))}
