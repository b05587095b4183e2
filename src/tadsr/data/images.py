"""A corpus's images: decoding one to a tensor, reading its size from the header, listing a
corpus folder's images for a split. Shared by the datasets and the shard writer/reader
(`shards`), below both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tadsr.data.corpus import assign_split, read_manifest
from tadsr.utils.files import list_images


def image_to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 image -> (3,H,W) uint8 tensor."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def load_image_u8(path: Path) -> torch.Tensor:
    """Decode an image file as RGB, (3,H,W) uint8; one-line error naming the file."""
    try:
        with Image.open(path) as im:
            return image_to_tensor(im.convert("RGB"))
    except Exception as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from exc


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header only."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from exc


def corpus_images(
    root: str | Path, split: str | None = None, errors: list[str] | None = None
) -> list[tuple[Path, int, int]]:
    """(path, width, height) of the corpus images under ``root`` for ``split``.

    With a ``manifest.json`` its split is used; otherwise every image under ``root``
    (recursive) is taken, and a split, when asked for, follows :func:`assign_split` over the
    relative paths so that train and val never share a photo. An unreadable image raises
    ValueError, or, when an ``errors`` list is given, is named there and left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    if split not in (None, "train", "val"):
        raise ValueError(f"split must be 'train', 'val' or None, got {split!r}")
    manifest = read_manifest(root)
    items: list[tuple[Path, int, int]] = []
    if manifest is not None:
        for p in manifest.get("photos", []):
            if split is not None and p.get("split", "train") != split:
                continue
            items.append((root / p["file"], int(p["width"]), int(p["height"])))
    else:
        paths = list_images(root, recursive=True)
        if split is not None:
            rel = [str(p.relative_to(root)) for p in paths]
            which = assign_split(rel)
            paths = [p for p, r in zip(paths, rel) if which[r] == split]
        for p in paths:
            try:
                w, h = image_size(p)
            except ValueError as exc:
                if errors is None:
                    raise
                errors.append(str(exc))  # the caller goes on without this file
                continue
            items.append((p, w, h))
    return items
