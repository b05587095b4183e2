"""Files in and out, one copy each: the atomic writer, the image lister, the one-line error.

Every output of the package (images, weights, checkpoints, JSON, caches) goes through
`atomic_write`: a temporary file beside the target, then `os.replace`, so a killed process
never leaves a half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

# every format Pillow (or tifffile) reads for us; upscale, eval and the corpus builder share it
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def temporary_name(path: Path) -> Path:
    """`.NAME.<pid>.tmp` beside `path`: hidden, and named by its process, so a later run can
    tell a stale temporary (its process is gone) from one being written."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path` (whose folder must exist) to write; on success it
    replaces `path` (with `mode`, else the usual mode under the umask); on any error it is
    removed."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if mode is None:
            mask = os.umask(0)
            os.umask(mask)
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """The image files of a folder (and its sub-folders when `recursive`), sorted, without
    hidden files; OSError if it cannot be listed."""
    root = Path(folder)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        p
        for p in found
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
