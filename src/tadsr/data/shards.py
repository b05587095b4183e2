"""Sharded corpora: the photos of a folder packed into tar files, read by random access.

The shards are webdataset's layout (POSIX tar files of ``KEY.EXT`` members, about
``shard_mb`` each), so webdataset and other tar tools read them as they are; each photo is
kept byte for byte as its file was (no re-encoding). Beside them, one index:

- ``shards.json``: format, version, the shard file names, the source folder, counts;
- ``samples.npy``: one row per photo: shard number, byte offset and size of its data in the
  tar, width, height and split (0 train, 1 val).

A training process reads the index once (a few bytes per photo) and then any photo with one
seek and one read: no rank or worker lists millions of files, and item ``i`` of a crop
dataset stays a function of ``(seed, i)`` whatever the number of processes, because photos
are chosen by index rather than streamed through a shuffle buffer. The photos, their order
and their split are those the folder itself gives (`images.corpus_images`), so a run on
the shards of a folder sees the very crops it would see on the folder.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

INDEX = "shards.json"
TABLE = "samples.npy"
FORMAT = "tadsr-shards (webdataset tar layout + random-access index)"
ROW = np.dtype([("shard", "<i4"), ("offset", "<i8"), ("size", "<i8"), ("width", "<i4"),
                ("height", "<i4"), ("split", "i1")])  # fmt: skip
SPLITS = {"train": 0, "val": 1}


@dataclass
class ShardReport:
    out_dir: Path
    photos: int = 0
    shards: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # unreadable files, named


def is_sharded(root: str | Path) -> bool:
    return (Path(root) / INDEX).is_file()


def _key(rel: Path) -> str:
    """A webdataset key: the relative path without its suffix, no dots in the file name
    (webdataset splits a member's name at its first dot into key and extension)."""
    name = rel.with_suffix("").name.replace(".", "_")
    return str(rel.parent / name) if str(rel.parent) != "." else name


def _splits(root: Path, paths: list[Path]) -> list[int]:
    """Each photo's split as the folder gives it: its manifest, else `assign_split`."""
    from tadsr.data.corpus import assign_split, read_manifest

    manifest = read_manifest(root)
    if manifest is not None:
        by_file = {root / p["file"]: p.get("split", "train") for p in manifest.get("photos", [])}
        return [SPLITS[by_file[p]] for p in paths]
    rel = [str(p.relative_to(root)) for p in paths]
    which = assign_split(rel)
    return [SPLITS[which[r]] for r in rel]


def build_shards(src: str | Path, out: str | Path, *, shard_mb: float = 1024,
                 progress: bool = True) -> ShardReport:  # fmt: skip
    """Pack the photos of ``src`` (nested folders as ImageNet's or LSDIR's, or a corpus with
    a manifest) into ``out``. Unreadable files are named in the report and left out."""
    from tqdm import tqdm

    from tadsr.data.images import corpus_images
    from tadsr.utils.files import atomic_write

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ValueError(f"{src}: not a folder")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise ValueError(f"{out}: the shards must not be written inside the source folder")
    report = ShardReport(out)
    items = corpus_images(src, None, errors=report.skipped)
    if not items:
        raise ValueError(f"{src}: no readable images")
    splits = _splits(src, [p for p, _, _ in items])
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[int, int, int, int, int, int]] = []
    names: list[str] = []
    tar: tarfile.TarFile | None = None
    size = 0
    try:
        for (path, w, h), split in tqdm(list(zip(items, splits)), desc="shards", unit="photo",
                                        disable=not progress):  # fmt: skip
            data = path.read_bytes()
            if tar is None or size + len(data) > shard_mb * 2**20 and size > 0:
                if tar is not None:
                    tar.close()
                names.append(f"shard-{len(names):06d}.tar")
                tar, size = tarfile.open(out / names[-1], "w", format=tarfile.PAX_FORMAT), 0
            info = tarfile.TarInfo(_key(path.relative_to(src)) + path.suffix.lower())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
            # the data ends the member, padded to whole blocks (addfile sets no offset_data)
            start = tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            rows.append((len(names) - 1, start, len(data), w, h, split))
            size += len(data)
            report.bytes += len(data)
    finally:
        if tar is not None:
            tar.close()
    with atomic_write(out / TABLE) as tmp, open(tmp, "wb") as f:
        np.save(f, np.array(rows, dtype=ROW))
    meta = {"format": FORMAT, "version": 1, "source": str(src), "photos": len(rows),
            "shards": names, "skipped": report.skipped}  # fmt: skip
    with atomic_write(out / INDEX) as tmp:  # written last: its presence means complete
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
    report.photos, report.shards = len(rows), len(names)
    return report


class ShardCorpus:
    """The photos of one split of a sharded corpus: sizes, and each photo's decoded pixels."""

    def __init__(self, root: str | Path, split: str | None = "train") -> None:
        self.root = Path(root)
        try:
            meta = json.loads((self.root / INDEX).read_text())
            table = np.load(self.root / TABLE, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.root}: not a readable sharded corpus ({exc})") from None
        if meta.get("version") != 1 or table.dtype != ROW:
            raise ValueError(f"{self.root / INDEX}: not a shard index this version reads")
        self.shards = [self.root / n for n in meta["shards"]]
        keep = np.ones(len(table), bool) if split is None else table["split"] == SPLITS[split]
        self.rows = np.ascontiguousarray(table[keep])

    def __len__(self) -> int:
        return len(self.rows)

    def sizes(self) -> np.ndarray:
        """(N, 2) widths and heights."""
        return np.stack([self.rows["width"], self.rows["height"]], axis=1)

    def read(self, j: int) -> torch.Tensor:
        """Photo ``j`` as a (3,H,W) uint8 tensor; a bad member is a one-line ValueError
        naming the shard file and the member."""
        from PIL import Image

        from tadsr.data.images import image_to_tensor

        row = self.rows[j]
        shard = self.shards[int(row["shard"])]
        try:
            with open(shard, "rb") as f:
                f.seek(int(row["offset"]))
                data = f.read(int(row["size"]))
            with Image.open(io.BytesIO(data)) as im:
                return image_to_tensor(im.convert("RGB"))
        except Exception as exc:  # PIL raises many types
            raise ValueError(f"{shard}: {self._member(j)}: cannot read image ({exc})") from None

    def _member(self, j: int) -> str:
        """The member's name, from the tar header just before its data."""
        row = self.rows[j]
        try:
            with open(self.shards[int(row["shard"])], "rb") as f:
                f.seek(int(row["offset"]) - tarfile.BLOCKSIZE)
                head = f.read(tarfile.BLOCKSIZE)
            return tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape").name
        except (OSError, tarfile.TarError):
            return f"photo at byte {int(row['offset'])}"
