"""A fixed evaluation set: HR crops and their degraded LR (``out/hr``, ``out/lr``, same names).

Each pair depends only on (seed, photo name, crop number), so a rerun with the same seed
writes byte-identical PNGs.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tadsr.data.degradation import build_degradation
from tadsr.data.images import corpus_images, load_image_u8
from tadsr.inference.imageio import DEFAULT_MAX_PIXELS


@dataclass
class PairsReport:
    out_dir: Path
    count: int
    skipped: list[str]
    failed: list[str] = field(default_factory=list)  # unreadable or too large: not written


def _seed_for(seed: int, name: str, k: int) -> list[int]:
    return [int(seed), zlib.crc32(name.encode("utf-8")), int(k)]


def _pick_crop(
    img: torch.Tensor, size: int, rng: np.random.Generator, tries: int = 8
) -> tuple[int, int]:
    """The most textured (largest std) of ``tries`` random crop positions: evaluation crops
    of flat sky or wall say little about a restorer."""
    _, h, w = img.shape
    best, best_std = (0, 0), -1.0
    for _ in range(tries):
        top = int(rng.integers(0, h - size + 1))
        left = int(rng.integers(0, w - size + 1))
        std = float(img[:, top : top + size, left : left + size].float().std())
        if std > best_std:
            best, best_std = (top, left), std
    return best


def _save_png(t: torch.Tensor, path: Path) -> None:
    arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(arr, "RGB").save(path, format="PNG", compress_level=6)


def make_eval_pairs(
    hr_dir: str | Path,
    out_dir: str | Path,
    degradation: str = "realesrgan",
    seed: int = 0,
    size: int = 256,
    count_per_image: int = 4,
    split: str | None = "val",
    scale: int = 4,
    progress: bool = True,
) -> PairsReport:
    """Write ``count_per_image`` crops of each photo of ``hr_dir`` (its ``split``) and their
    LR (size/scale) made by ``degradation`` with a per-pair seeded CPU generator."""
    if size % scale:
        raise ValueError(f"size {size} must be a multiple of scale {scale}")
    deg = build_degradation(degradation, scale=scale)
    failed: list[str] = []  # one bad file is named; the others are still written
    items = corpus_images(hr_dir, split, errors=failed)
    if not items and not failed:
        raise ValueError(f"{hr_dir}: no images" + (f" in split {split!r}" if split else ""))
    out = Path(out_dir)
    (out / "hr").mkdir(parents=True, exist_ok=True)
    (out / "lr").mkdir(parents=True, exist_ok=True)
    skipped, names = [], []
    from tqdm import tqdm

    for path, w, h in tqdm(items, desc="pairs", unit="photo", disable=not progress):
        if min(w, h) < size:
            skipped.append(f"{path}: {w}x{h} smaller than {size}")
            continue
        if w * h > DEFAULT_MAX_PIXELS:  # a decompression bomb, or too large to hold
            failed.append(f"{path}: {w}x{h} is over the pixel limit of {DEFAULT_MAX_PIXELS:,}")
            continue
        try:
            img = load_image_u8(path)
        except ValueError as exc:
            failed.append(str(exc))
            continue
        for k in range(count_per_image):
            key = _seed_for(seed, path.stem, k)
            rng = np.random.default_rng(key)
            top, left = _pick_crop(img, size, rng)
            hr = img[:, top : top + size, left : left + size].float()[None] / 255.0
            g = torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
            lr = deg(hr, g)
            name = f"{path.stem}_{k:02d}.png"
            _save_png(hr[0], out / "hr" / name)
            _save_png(lr[0], out / "lr" / name)
            names.append({"name": name, "source": path.name, "top": top, "left": left})
    info = {
        "degradation": degradation,
        "seed": seed,
        "size": size,
        "scale": scale,
        "count_per_image": count_per_image,
        "split": split,
        "pairs": names,
        "skipped": skipped,
        "failed": failed,
    }
    (out / "pairs.json").write_text(json.dumps(info, indent=1) + "\n")
    return PairsReport(out, len(names), skipped, failed)
