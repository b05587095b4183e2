"""The data of a training step: seeded generators, HR crops, micro-batch indices, latents.

Every random draw of a step comes from a generator seeded by (seed, step, micro-batch,
rank), and the data of a step is a function of the step, so a resumed run continues exactly
(the micro-batches themselves are made by `train.feed`, in worker processes or here).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.train.distributed import Dist

if TYPE_CHECKING:
    from tadsr.data.datasets import CropDataset


def step_generator(
    seed: int, step: int, micro: int, rank: int, stream: str = ""
) -> torch.Generator:
    h = hashlib.sha256(f"{seed}/{step}/{micro}/{rank}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & (2**63 - 1))


def disc_noise(kind: str, shape, g: torch.Generator) -> torch.Tensor:
    """The noise of the discriminator's q(x_t | x0): N(0, 1), U[0, 1) or none (drawn by the
    distillation objective and by `disc_probe` alike)."""
    if kind == "none":
        return torch.zeros(shape)
    return (torch.rand if kind == "uniform" else torch.randn)(shape, generator=g)


def training_crops(cfg) -> CropDataset:
    """The endless, seeded stream of HR training crops a run's config describes."""
    from tadsr.data.datasets import CropDataset

    return CropDataset(
        cfg.data.root,
        crop_size=cfg.data.crop_size,
        split="train",
        seed=cfg.run.seed,
        length=10**9,
        texture_candidates=cfg.data.texture_candidates,
    )


@dataclass
class MicroBatch:
    hr: Tensor  # [-1, 1]
    lq: Tensor  # [-1, 1], the LR image
    generator: torch.Generator


def per_process(batch_size: int, accum: int, d: Dist) -> int:
    """Samples per micro-batch of one process (ValueError when they do not divide)."""
    per = batch_size // (accum * d.world)
    if per < 1 or per * accum * d.world != batch_size:
        raise ValueError(
            f"batch_size {batch_size} must be a multiple of grad_accum {accum} "
            f"x processes {d.world}"
        )
    return per


def first_index(step: int, micro: int, accum: int, d: Dist, per: int) -> int:
    """The index of this process's first sample in micro-batch `micro` of `step`."""
    return ((step * accum + micro) * d.world + d.rank) * per


def lr_latent(codec, lq: Tensor, scale: int) -> Tensor:
    """y: the codec latent of the bicubic-upsampled LR image."""
    with torch.no_grad():
        up = F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False)
        return codec.encode(up)


def latents(codec, hr: Tensor, lq: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """(x0, y): codec latents of the HR image and of the bicubic-upsampled LR image."""
    with torch.no_grad():
        return codec.encode(hr), lr_latent(codec, lq, scale)
