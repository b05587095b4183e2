"""A reproducible photo corpus from Debian wallpaper packages (see /work/shared/DATA.md).

Pipeline: ``apt-get download`` (no install) -> ``dpkg-deb -x`` into a temp dir -> pick the
photographs named by each :class:`PhotoSource` -> drop non-photos and duplicates ->
downsample x2 with an area (box) filter -> lossless PNG + ``manifest.json`` with a fixed
train/validation split by whole photo.  Any folder of images can be turned into a corpus with
:func:`build_folder_corpus`; :class:`tadsr.data.datasets.CropDataset` also reads plain folders.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tadsr.utils.files import atomic_write, list_images, sha256_file

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class CorpusError(RuntimeError):
    """A corpus could not be built (apt, dpkg-deb or an input image failed)."""


@dataclass(frozen=True)
class PhotoSource:
    """One Debian package and the photographs inside it (paths relative to the package root)."""

    package: str
    globs: tuple[str, ...]
    licence: str
    exclude: tuple[str, ...] = ()
    per_file_licence: bool = False  # resolve each file's licence from the DEP-5 copyright file


_PLASMA = (
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
)

#: The photographs listed in DATA.md (about 44 photos, ~240 MP before the x2 downsampling).
DEFAULT_SOURCES: tuple[PhotoSource, ...] = (
    PhotoSource(
        "lomiri-wallpapers-16.04",
        ("usr/share/backgrounds/*_by_*.jpg",),
        "CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0 (per file)",
        exclude=("umang_by_Abhishek_Mudgal.jpg",),
        per_file_licence=True,
    ),
    PhotoSource(
        "lomiri-wallpapers-20.04",
        (
            "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
            "usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg",
        ),
        "CC-BY-SA-3.0",
    ),
    PhotoSource("mate-backgrounds", ("usr/share/backgrounds/mate/nature/*.jpg",), "GPL-2+"),
    PhotoSource(
        "plasma-workspace-wallpapers",
        tuple(f"usr/share/wallpapers/{n}/contents/images/2560x1600.jpg" for n in _PLASMA),
        "LGPL-3",
    ),
    PhotoSource("palapeli-data", ("usr/share/palapeli/collection/*.jpg",), "GPL-2+"),
)


@dataclass
class Candidate:
    """A source image before filtering."""

    path: Path
    name: str  # output stem, unique in the corpus
    package: str
    source_file: str  # path inside the package (or relative to the source folder)
    licence: str
    package_version: str = ""


@dataclass
class CorpusReport:
    """What a build did."""

    out_dir: Path
    photos: list[dict] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    @property
    def megapixels(self) -> float:
        return sum(p["width"] * p["height"] for p in self.photos) / 1e6

    def summary(self) -> str:
        n_val = sum(p["split"] == "val" for p in self.photos)
        return (
            f"{len(self.photos)} photos ({len(self.photos) - n_val} train, {n_val} val), "
            f"{self.megapixels:.1f} MP after x2 downsampling, {len(self.dropped)} dropped"
        )


# --------------------------------------------------------------------------- helpers


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "image"


def _stem_for(path: Path) -> str:
    """Output stem: the file stem, or the wallpaper folder when the stem is just a size."""
    stem = path.stem
    if re.fullmatch(r"\d+x\d+", stem) and len(path.parts) >= 4:
        stem = path.parts[-4]  # .../NAME/contents/images/WxH.jpg
    return _safe_name(stem)


def load_rgb(path: Path) -> Image.Image:
    """Open an image as 8-bit RGB (EXIF orientation applied); one-line error on failure."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                if np.asarray(rgba.getchannel("A")).min() < 255:
                    raise CorpusError(f"{path}: has transparency (not a photograph)")
            return im.convert("RGB")
    except CorpusError:
        raise
    except Exception as exc:  # PIL raises many types
        raise CorpusError(f"{path}: cannot read image ({exc})") from exc


def photo_reject_reason(img: Image.Image, min_side: int = 256) -> str | None:
    """Why ``img`` is not a usable photograph, or None.

    Rejects small images and flat graphics (few distinct colours, or few gray levels for a
    black-and-white image, in a 256-pixel thumbnail).
    """
    w, h = img.size
    if min(w, h) < min_side:
        return f"too small ({w}x{h}, need {min_side} on the short side)"
    thumb = np.asarray(img.resize((256, 256), Image.Resampling.BOX), dtype=np.int32)
    gray = (
        np.abs(thumb[..., 0] - thumb[..., 1]).max() <= 2
        and np.abs(thumb[..., 1] - thumb[..., 2]).max() <= 2
    )
    if gray:  # a black-and-white photo is fine; a few gray levels is a graphic
        levels = np.unique(thumb[..., 1]).size
        if levels < 64:
            return f"graphic, only {levels} gray levels in a thumbnail"
        return None
    colours = np.unique(thumb[..., 0] << 16 | thumb[..., 1] << 8 | thumb[..., 2]).size
    if colours < 2000:
        return f"graphic, only {colours} distinct colours in a thumbnail"
    return None


def dhash(img: Image.Image, size: int = 16) -> int:
    """Difference hash of the luminance (near-duplicate detection, invariant to resizing)."""
    g = np.asarray(img.convert("L").resize((size + 1, size), Image.Resampling.BOX), dtype=np.int32)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def _hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def assign_split(names: Sequence[str], val_every: int = 6) -> dict[str, str]:
    """Fixed split by whole photo: in sorted name order, index i is 'val' when
    ``i % val_every == val_every // 2``; at least one val photo when there are two or more."""
    order = sorted(names)
    split = {n: "train" for n in order}
    for i, n in enumerate(order):
        if i % val_every == val_every // 2:
            split[n] = "val"
    if len(order) >= 2 and "val" not in split.values():
        split[order[len(order) // 2]] = "val"
    return split


def read_manifest(root: str | Path) -> dict | None:
    """The corpus manifest of ``root`` or None if there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: not valid JSON ({exc})") from exc


def _write_manifest(out_dir: Path, photos: list[dict], complete: bool, extra: dict) -> None:
    data = {
        "version": MANIFEST_VERSION,
        "complete": complete,
        "downsample": "x2 area (PIL box reduce)",
        "split_rule": "sorted by name, every 6th photo (i % 6 == 3) is val",
        **extra,
        "photos": sorted(photos, key=lambda p: p["name"]),
    }
    with atomic_write(out_dir / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


# --------------------------------------------------------------------------- the core


def _write_photo(
    cand: Candidate,
    out: Path,
    src_sha: str,
    downsample: int,
    min_side: int,
    seen_hash: list[tuple[int, str]],
) -> dict | str:
    """Check, downsample and write one new photo: its manifest entry, or why it is dropped."""
    try:
        img = load_rgb(cand.path)
    except CorpusError as exc:
        return str(exc)
    reason = photo_reject_reason(img, min_side=min_side * downsample)
    if reason:
        return reason
    ph = dhash(img)
    dup = next((n for h, n in seen_hash if _hamming(h, ph) <= 10), None)
    if dup is not None:
        return f"near-duplicate of {dup}"
    ow, oh = img.size
    if downsample > 1:
        img = img.crop((0, 0, ow - ow % downsample, oh - oh % downsample))
        img = img.reduce(downsample)  # box filter = area averaging
    file = f"{cand.name}.png"
    img.save(out / file, format="PNG", compress_level=6)
    return {
        "name": cand.name,
        "file": file,
        "package": cand.package,
        "package_version": cand.package_version,
        "source_file": cand.source_file,
        "licence": cand.licence,
        "orig_width": ow,
        "orig_height": oh,
        "width": img.size[0],
        "height": img.size[1],
        "sha256": sha256_file(out / file),
        "source_sha256": src_sha,
        "dhash": f"{ph:064x}",
    }


def process_candidates(
    candidates: Sequence[Candidate],
    out_dir: str | Path,
    downsample: int = 2,
    progress: bool = True,
    min_side: int = 256,
    extra: dict | None = None,
) -> CorpusReport:
    """Filter, deduplicate, downsample and write ``candidates``; write the manifest.

    Resumable: photos already written (listed in the manifest with a matching PNG) are kept
    without re-encoding; the manifest is rewritten after every photo.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    old = read_manifest(out) or {}
    done = {p["name"]: p for p in old.get("photos", []) if (out / p["file"]).is_file()}
    report = CorpusReport(out)
    seen_sha: dict[str, str] = {}
    seen_hash: list[tuple[int, str]] = []
    photos: list[dict] = []
    extra = dict(extra or {})

    from tqdm import tqdm

    bar = tqdm(candidates, desc="photos", unit="img", disable=not progress)
    for cand in bar:
        bar.set_postfix_str(cand.name[:30])
        prev = done.get(cand.name)
        if prev is not None and prev.get("source_file") == cand.source_file:
            src_sha, ph = prev["source_sha256"], int(prev["dhash"], 16)
        else:
            src_sha, ph = sha256_file(cand.path), None
        if src_sha in seen_sha:
            report.dropped.append((cand.source_file, f"duplicate of {seen_sha[src_sha]}"))
            continue
        if prev is not None and ph is not None:
            entry = prev
        else:
            entry = _write_photo(cand, out, src_sha, downsample, min_side, seen_hash)
            if isinstance(entry, str):
                report.dropped.append((cand.source_file, entry))
                continue
            ph = int(entry["dhash"], 16)
        dup = next((n for h, n in seen_hash if _hamming(h, ph) <= 10), None)
        if dup is not None:
            report.dropped.append((cand.source_file, f"near-duplicate of {dup}"))
            continue
        seen_sha[src_sha] = cand.name
        seen_hash.append((ph, cand.name))
        photos.append(dict(entry))
        _write_manifest(out, photos, complete=False, extra=extra)
    split = assign_split([p["name"] for p in photos])
    for p in photos:
        p["split"] = split[p["name"]]
    extra["dropped"] = [{"source": s, "reason": r} for s, r in report.dropped]
    _write_manifest(out, photos, complete=True, extra=extra)
    report.photos = sorted(photos, key=lambda p: p["name"])
    return report


def build_folder_corpus(
    src_dir: str | Path,
    out_dir: str | Path,
    licence: str = "unknown",
    downsample: int = 2,
    progress: bool = True,
    min_side: int = 256,
) -> CorpusReport:
    """Turn any folder of photographs into a corpus (same filtering, manifest and split)."""
    src = Path(src_dir)
    if not src.is_dir():
        raise CorpusError(f"{src}: not a folder")
    cands = []
    used: set[str] = set()
    for p in list_images(src, recursive=True):
        name = _unique(_safe_name(str(p.relative_to(src).with_suffix(""))), used)
        cands.append(Candidate(p, name, "folder", str(p.relative_to(src)), licence))
    if not cands:
        raise CorpusError(f"{src}: no images found")
    return process_candidates(
        cands, out_dir, downsample, progress, min_side, extra={"source": str(src)}
    )


def _unique(name: str, used: set[str]) -> str:
    base, i = name, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


# --------------------------------------------------------------------------- Debian


def parse_dep5_licences(text: str) -> list[tuple[list[str], str]]:
    """(file patterns, licence) stanzas of a machine-readable debian/copyright file."""
    stanzas: list[tuple[list[str], str]] = []
    for block in re.split(r"\n\s*\n", text):
        files: list[str] = []
        lic = None
        key = None
        for line in block.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                if key == "files":
                    files = val.split()
                elif key == "license":
                    lic = val.strip()
            elif key == "files":
                files.extend(line.split())
        if files and lic:
            stanzas.append((files, lic))
    return stanzas


def licence_for(source_file: str, stanzas: list[tuple[list[str], str]], default: str) -> str:
    """The licence of the last stanza whose pattern matches the file's base name (DEP-5 rule)."""
    base = Path(source_file).name
    found = default
    for pats, lic in stanzas:
        names = [Path(p).name for p in pats]
        if any(fnmatch.fnmatchcase(base, n) for n in names if n.strip("*")):
            found = lic
    return found


def apt_download(package: str, dest: Path) -> Path:
    """``apt-get download PKG`` into ``dest`` (cached); runs ``apt-get update`` once on failure."""
    dest.mkdir(parents=True, exist_ok=True)
    have = sorted(dest.glob(f"{package}_*.deb"))
    if have:
        return have[-1]
    if shutil.which("apt-get") is None:
        raise CorpusError(f"{package}: apt-get is not available on this machine")
    for attempt in range(2):
        res = subprocess.run(
            ["apt-get", "download", package], cwd=dest, capture_output=True, text=True
        )
        have = sorted(dest.glob(f"{package}_*.deb"))
        if res.returncode == 0 and have:
            return have[-1]
        if attempt == 0:
            subprocess.run(["apt-get", "update"], capture_output=True, text=True)
    msg = (res.stderr or res.stdout).strip().splitlines()
    raise CorpusError(
        f"{package}: apt-get download failed ({msg[-1] if msg else 'no output'}); "
        "is the package in this machine's apt sources?"
    )


def extract_deb(deb: Path, dest: Path) -> str:
    """``dpkg-deb -x`` the package into ``dest``; returns the package version."""
    if shutil.which("dpkg-deb") is None:
        raise CorpusError(f"{deb}: dpkg-deb is not available on this machine")
    res = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if res.returncode != 0:
        raise CorpusError(f"{deb}: dpkg-deb -x failed ({res.stderr.strip()})")
    ver = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True
    ).stdout.strip()
    return ver


def source_candidates(
    src: PhotoSource, root: Path, version: str, used: set[str]
) -> list[Candidate]:
    """The photographs of one extracted package (globs minus the exclude list)."""
    paths: list[Path] = []
    for g in src.globs:
        paths.extend(sorted(root.glob(g)))
    paths = [p for p in dict.fromkeys(paths) if p.name not in src.exclude]
    stanzas: list[tuple[list[str], str]] = []
    if src.per_file_licence:
        cr = root / "usr/share/doc" / src.package / "copyright"
        if cr.is_file():
            stanzas = parse_dep5_licences(cr.read_text(errors="replace"))
    out = []
    for p in paths:
        rel = str(p.relative_to(root))
        lic = licence_for(rel, stanzas, src.licence) if stanzas else src.licence
        short = src.package.split("-")[0]
        name = _unique(f"{short}_{_stem_for(p)}", used)
        out.append(Candidate(p, name, src.package, rel, lic, version))
    return out


def build_photo_corpus(
    out_dir: str | Path,
    packages: Iterable[PhotoSource] = DEFAULT_SOURCES,
    progress: bool = True,
    deb_dir: str | Path | None = None,
    downloader: Callable[[str, Path], Path] = apt_download,
    downsample: int = 2,
    min_side: int = 256,
) -> CorpusReport:
    """Build the photo corpus from Debian packages into ``out_dir`` (idempotent, resumable).

    The .deb files are cached in ``deb_dir`` (default ``out_dir/.debs``) so a rerun needs no
    network; photos already in the manifest are not re-encoded. Photos whose short side is
    below ``min_side`` after downsampling are dropped.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    debs = Path(deb_dir) if deb_dir else out / ".debs"
    sources = list(packages)
    with tempfile.TemporaryDirectory(prefix="tadsr-debs-") as tmp:
        cands: list[Candidate] = []
        used: set[str] = set()
        from tqdm import tqdm

        for src in tqdm(sources, desc="packages", unit="pkg", disable=not progress):
            deb = downloader(src.package, debs)
            root = Path(tmp) / src.package
            root.mkdir()
            version = extract_deb(deb, root)
            found = source_candidates(src, root, version, used)
            if not found:
                raise CorpusError(f"{deb}: no file matches {', '.join(src.globs)}")
            cands.extend(found)
        return process_candidates(
            cands,
            out,
            downsample=downsample,
            progress=progress,
            min_side=min_side,
            extra={"sources": [s.package for s in sources]},
        )
