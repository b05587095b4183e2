"""Datasets: random HR crops from a corpus folder, and paired LR/HR folders.

Tensors are float in [0, 1], shape (3, H, W) (convert to [-1, 1] in the trainer).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tadsr.data.images import corpus_images, image_size, load_image_u8
from tadsr.data.shards import ShardCorpus, is_sharded
from tadsr.utils.files import list_images


class CropDataset(Dataset):
    """Random ``crop_size`` HR crops with horizontal flips from a corpus folder or shards.

    Item ``i`` is a deterministic function of ``(seed, i)`` (its own numpy SeedSequence), so a
    resumed run sees exactly the same crops. Photos are chosen with probability proportional
    to their area (``weighting="area"``) or uniformly; each photo is decoded once, on first
    use, and kept in memory. ``length`` sets the number of items (default 1000 per photo).
    ``texture_candidates`` K > 1 draws K candidate crops per item and keeps the one with the
    most texture (mean absolute difference between neighbouring grey pixels), so flat regions
    (sky, bokeh) are seen less often; K = 1 is plain random cropping.
    """

    CACHE_BYTES = 1 << 30  # decoded photos kept per process (each worker has its own)

    def __init__(
        self,
        root: str | Path,
        crop_size: int = 256,
        split: str | None = "train",
        seed: int = 0,
        length: int | None = None,
        flip: bool = True,
        weighting: str = "area",
        texture_candidates: int = 1,
    ) -> None:
        if texture_candidates < 1:
            raise ValueError(f"texture_candidates must be >= 1, got {texture_candidates}")
        self.texture_candidates = int(texture_candidates)
        self.root = Path(root)
        self.crop_size = int(crop_size)
        self.seed = int(seed)
        self.flip = flip
        self._shards = ShardCorpus(self.root, split) if is_sharded(self.root) else None
        if self._shards is not None:  # sizes from the index: nothing is listed or opened
            paths, sizes = None, self._shards.sizes()
        else:
            items = corpus_images(self.root, split)
            paths = [p for p, _, _ in items]
            sizes = np.array([(w, h) for _, w, h in items], dtype=np.int64).reshape(-1, 2)
        small = sizes.min(axis=1) < self.crop_size
        for j in np.flatnonzero(small)[:5]:
            where = paths[j] if paths else f"{self.root}: photo {j}"
            w, h = sizes[j]
            warnings.warn(f"{where}: {w}x{h} is smaller than crop {self.crop_size}, skipped",
                          stacklevel=2)  # fmt: skip
        self._keep = np.flatnonzero(~small)
        if not len(self._keep):
            raise ValueError(
                f"{self.root}: no image of at least {self.crop_size}x{self.crop_size}"
                + (f" in split {split!r}" if split else "")
            )
        self.paths = [paths[j] for j in self._keep] if paths else None
        self.sizes = sizes[self._keep]
        if weighting == "area":
            wts = self.sizes[:, 0].astype(np.float64) * self.sizes[:, 1]
        elif weighting == "uniform":
            wts = np.ones(len(self._keep))
        else:
            raise ValueError(f"weighting must be 'area' or 'uniform', got {weighting!r}")
        self._cdf = np.cumsum(wts / wts.sum())
        self.length = int(length) if length is not None else 1000 * len(self._keep)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cached = 0  # bytes held in the cache

    def __len__(self) -> int:
        return self.length

    @property
    def photo_count(self) -> int:
        return len(self._keep)

    def image(self, j: int) -> torch.Tensor:
        """Photo ``j`` as a (3,H,W) uint8 tensor, decoded once and kept while the cache
        (``CACHE_BYTES`` per process) holds it; the least recently used photo goes first."""
        img = self._cache.get(j)
        if img is not None:
            self._cache.move_to_end(j)
            return img
        if self._shards is not None:
            img = self._shards.read(int(self._keep[j]))
        else:
            assert self.paths is not None  # set whenever the corpus is a folder
            img = load_image_u8(self.paths[j])
        self._cache[j] = img
        self._cached += img.numel()
        while self._cached > self.CACHE_BYTES and len(self._cache) > 1:
            self._cached -= self._cache.popitem(last=False)[1].numel()
        return img

    def crop_params(self, index: int) -> tuple[int, int, int, bool]:
        """(photo, top, left, flip) of item ``index``."""
        rng = np.random.default_rng([self.seed, int(index)])
        candidates = []
        for _ in range(self.texture_candidates):
            j = min(int(np.searchsorted(self._cdf, rng.random(), side="right")), len(self._cdf) - 1)
            w, h = self.sizes[j]
            top = int(rng.integers(0, h - self.crop_size + 1))
            left = int(rng.integers(0, w - self.crop_size + 1))
            candidates.append((j, top, left))
        best = candidates[0]
        if len(candidates) > 1:  # max keeps the first of equal scores
            best = max(candidates, key=lambda cand: self.texture(*cand))
        flip = bool(self.flip and rng.random() < 0.5)
        return (*best, flip)

    def texture(self, j: int, top: int, left: int) -> float:
        """Mean absolute difference between neighbouring pixels of a crop's grey image."""
        c = self.crop_size
        g = self.image(j)[:, top : top + c, left : left + c].float().mean(0)
        return float((g[1:] - g[:-1]).abs().mean() + (g[:, 1:] - g[:, :-1]).abs().mean())

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.length:
            raise IndexError(index)
        j, top, left, flip = self.crop_params(index)
        img = self.image(j)
        c = self.crop_size
        crop = img[:, top : top + c, left : left + c]
        if flip:
            crop = crop.flip(-1)
        return crop.float().div_(255.0)


class PairedFolderDataset(Dataset):
    """(lr, hr, name) from two folders with matching file names (stems; any image format).

    The scale is inferred from the first pair and every pair must match it exactly.
    """

    def __init__(self, lr_dir: str | Path, hr_dir: str | Path, scale: int | None = None) -> None:
        self.lr_dir, self.hr_dir = Path(lr_dir), Path(hr_dir)
        for d in (self.lr_dir, self.hr_dir):
            if not d.is_dir():
                raise ValueError(f"{d}: not a folder")
        lr = {p.stem: p for p in list_images(self.lr_dir)}
        hr = {p.stem: p for p in list_images(self.hr_dir)}
        if not hr:
            raise ValueError(f"{self.hr_dir}: no images")
        only_lr, only_hr = sorted(set(lr) - set(hr)), sorted(set(hr) - set(lr))
        if only_lr or only_hr:
            bad = [f"{self.lr_dir / n} has no HR" for n in only_lr[:3]]
            bad += [f"{self.hr_dir / n} has no LR" for n in only_hr[:3]]
            raise ValueError("unmatched names: " + "; ".join(bad))
        self.names = sorted(hr)
        self.lr_paths = [lr[n] for n in self.names]
        self.hr_paths = [hr[n] for n in self.names]
        self.scale = scale
        for lp, hp in zip(self.lr_paths, self.hr_paths):
            (lw, lh), (hw, hh) = image_size(lp), image_size(hp)
            if self.scale is None:
                self.scale = hw // lw if lw else 0
            if self.scale < 1 or (lw * self.scale, lh * self.scale) != (hw, hh):
                raise ValueError(
                    f"{hp}: size {hw}x{hh} is not {self.scale}x the LR size {lw}x{lh} ({lp})"
                )

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        lr = load_image_u8(self.lr_paths[index]).float() / 255.0
        hr = load_image_u8(self.hr_paths[index]).float() / 255.0
        return lr, hr, self.names[index]


def make_training_pairs(
    hr_batch: torch.Tensor, degradation, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, hr) for training: ``lr = degradation(hr, generator)``, both in [0, 1]."""
    with torch.no_grad():
        lr = degradation(hr_batch, generator)
    return lr, hr_batch
