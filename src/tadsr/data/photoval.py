"""A validation set of whole photographs that the training corpus never sees.

The photos come from Python packages that ship them (scikit-image, scikit-learn, matplotlib;
none is a Debian wallpaper): faces and people, an animal, objects, architecture, a vehicle,
foliage. Each whole photo (cropped to a multiple of the scale) gets three LR versions:

- ``lr_clean``: MATLAB-style bicubic /scale (the classic benchmark input);
- ``lr_real``: the seeded "mild" second-order Real-ESRGAN degradation (light blur, noise and
  JPEG, no sinc), what a phone photo or a web JPEG looks like;
- ``lr_heavy``: a heavily degraded photo: bicubic /scale, colour Gaussian noise of sigma
  10-15 (of 255), then JPEG at quality 50-60 (seeded per photo), where a model that
  mistakes noise and blocks for detail amplifies them.

The layout is ``OUT/hr``, ``OUT/lr_clean``, ``OUT/lr_real``, ``OUT/lr_heavy`` with the same
file names, plus
``photos.json`` (source, licence, size, seed). A rerun with the same seed writes
byte-identical files.

``corpus=``: also the validation-split photos of a training corpus (``tadsr data photos``;
its split is by whole photo and training reads only the train split), as ``corpus_NAME.png``,
each shrunk with an area (box) filter so that its long side is at most ``max_side`` HR pixels:
large scenes (landscapes, a meadow, flowers, a lake) beside the packages' small photos, so
that a comparison rests on more than nine pictures.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tadsr.utils.files import atomic_write

LR_KINDS = ("clean", "real", "heavy")
FOLDERS = ("hr",) + tuple(f"lr_{k}" for k in LR_KINDS)  # one file per photo in each


@dataclass(frozen=True)
class ValPhoto:
    name: str
    package: str
    loader: Callable[[], np.ndarray]
    content: str
    licence: str


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        img = getattr(skimage.data, name)()
        return img[0] if isinstance(img, tuple) else img  # stereo_motorcycle: (left, right, disp)

    return load


def _sklearn(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


PHOTOS: tuple[ValPhoto, ...] = (
    ValPhoto(
        "astronaut", "scikit-image", _skimage("astronaut"), "person, face", "public domain (NASA)"
    ),
    ValPhoto(
        "grace_hopper", "matplotlib", _grace_hopper, "face, uniform", "public domain (US Navy)"
    ),
    ValPhoto("camera", "scikit-image", _skimage("camera"), "person, grey", "CC0 / public domain"),
    ValPhoto(
        "chelsea",
        "scikit-image",
        _skimage("chelsea"),
        "animal (cat fur)",
        "CC0 (Stefan van der Walt)",
    ),
    ValPhoto("coffee", "scikit-image", _skimage("coffee"), "object, food", "CC0 (Rachel Michetti)"),
    ValPhoto(
        "rocket",
        "scikit-image",
        _skimage("rocket"),
        "machine, lettering, sky",
        "public domain (SpaceX)",
    ),
    ValPhoto(
        "motorcycle",
        "scikit-image",
        _skimage("stereo_motorcycle"),
        "vehicle, busy scene",
        "Middlebury stereo 2014 (research use)",
    ),
    ValPhoto(
        "china", "scikit-learn", _sklearn(0), "architecture, foliage", "CC-BY (Flickr, see sklearn)"
    ),
    ValPhoto(
        "flower", "scikit-learn", _sklearn(1), "flower, foliage", "CC-BY (Flickr, see sklearn)"
    ),
)


def _rgb(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    return np.ascontiguousarray(arr.astype(np.uint8))


def clean_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style antialiased bicubic /scale, rounded to 8 bits."""
    from tadsr.evaluation.imresize import imresize

    return np.clip(np.round(imresize(hr.astype(np.float64), 1.0 / scale)), 0, 255).astype(np.uint8)


def real_lr(hr: np.ndarray, scale: int, seed: int, name: str) -> np.ndarray:
    """The seeded mild Real-ESRGAN degradation of one whole photo."""
    from tadsr.data.degradation import build_degradation

    deg = build_degradation("realesrgan_mild", scale=scale)
    key = np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0]
    g = torch.Generator().manual_seed(int(key))
    x = torch.from_numpy(hr).permute(2, 0, 1)[None].float() / 255.0
    lr = deg(x, g)[0]
    return (lr * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def heavy_lr(hr: np.ndarray, scale: int, seed: int, name: str) -> np.ndarray:
    """Bicubic /scale, colour noise sigma U(10, 15) / 255, JPEG quality U(50, 60), seeded."""
    from tadsr.data.jpeg import jpeg_roundtrip

    key = np.random.SeedSequence([int(seed), zlib.crc32(name.encode()), 2]).generate_state(1)[0]
    rng = np.random.default_rng(int(key))
    x = clean_lr(hr, scale).astype(np.float64)
    x = x + rng.normal(0.0, rng.uniform(10.0, 15.0), x.shape)
    x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return jpeg_roundtrip(x, int(round(rng.uniform(50.0, 60.0))))


def _save(arr: np.ndarray, path: Path) -> None:
    with atomic_write(path) as tmp:
        Image.fromarray(arr, "RGB").save(tmp, format="PNG", compress_level=6)


def corpus_val_photos(corpus: str | Path, max_side: int = 768) -> list[ValPhoto]:
    """The validation-split photos of a corpus folder (its ``manifest.json``), each shrunk
    with an area (box) filter to a long side of at most ``max_side``. ValueError when the
    folder has no manifest, the manifest is not JSON, or it lists no validation photo."""
    root = Path(corpus)
    path = root / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: no corpus manifest ({exc.strerror}); "
                         "build one with `tadsr data photos`") from None  # fmt: skip
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("photos", []), list):
        raise ValueError(f"{path}: not a corpus manifest (no list of photos)")
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16, got {max_side}")

    def loader(file: Path) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            with Image.open(file) as im:
                im = im.convert("RGB")
                f = min(1.0, max_side / max(im.size))
                if f < 1.0:
                    size = (max(1, round(im.width * f)), max(1, round(im.height * f)))
                    im = im.resize(size, Image.Resampling.BOX)
                return np.asarray(im)

        return load

    photos = [
        ValPhoto(f"corpus_{p['name']}", p.get("package", "corpus"), loader(root / p["file"]),
                 "corpus photo (validation split)", p.get("licence", "see the corpus manifest"))
        for p in manifest.get("photos", [])
        if isinstance(p, dict) and p.get("split") == "val" and "name" in p and "file" in p
    ]  # fmt: skip
    if not photos:
        raise ValueError(f"{path}: lists no validation-split photo")
    return photos


def _written_before(out: Path) -> set[str]:
    """The files a previous run listed in OUT/photos.json (only those may be removed)."""
    try:
        info = json.loads((out / "photos.json").read_text())
        return {Path(e["file"]).name for e in info.get("photos", [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def make_photo_val(
    out_dir: str | Path,
    seed: int = 0,
    scale: int = 4,
    names: Sequence[str] | None = None,
    corpus: str | Path | None = None,
    max_side: int = 768,
) -> list[dict]:
    """Write the set (``names``: only these photos; ``corpus``: also that corpus's
    validation-split photos, see `corpus_val_photos`); returns the ``photos.json`` entries.
    Files that a previous run listed in OUT/photos.json and this one does not write are
    removed, so that a folder holds exactly one set.
    Photos whose package is not installed are listed under "skipped" there
    (``pip install scikit-image scikit-learn matplotlib``)."""
    out = Path(out_dir)
    photos = list(PHOTOS)
    if corpus is not None:
        photos += corpus_val_photos(corpus, max_side)
    stale = _written_before(out)
    for sub in FOLDERS:
        (out / sub).mkdir(parents=True, exist_ok=True)
    entries, skipped = [], []
    for p in photos:
        if names is not None and p.name not in names:
            continue
        try:
            arr = _rgb(p.loader())
        except (ImportError, AttributeError, OSError, ValueError) as exc:
            skipped.append(f"{p.name}: {p.package} not available ({exc})")
            continue
        h, w = (arr.shape[0] // scale) * scale, (arr.shape[1] // scale) * scale
        hr = arr[:h, :w]
        fname = f"{p.name}.png"
        _save(hr, out / "hr" / fname)
        _save(clean_lr(hr, scale), out / "lr_clean" / fname)
        _save(real_lr(hr, scale, seed, p.name), out / "lr_real" / fname)
        _save(heavy_lr(hr, scale, seed, p.name), out / "lr_heavy" / fname)
        entries.append(
            {
                "file": fname,
                "package": p.package,
                "content": p.content,
                "licence": p.licence,
                "width": w,
                "height": h,
            }
        )
    if not entries:
        raise ValueError(
            "no validation photo available: pip install scikit-image scikit-learn matplotlib"
        )
    for fname in stale - {e["file"] for e in entries}:  # not in this set: gone from every folder
        for sub in FOLDERS:
            (out / sub / fname).unlink(missing_ok=True)
    info = {"seed": seed, "scale": scale, "photos": entries, "skipped": skipped}
    if corpus is not None:
        info["corpus"] = {"folder": str(corpus), "max_side": max_side}
    (out / "photos.json").write_text(json.dumps(info, indent=1) + "\n")
    return entries
