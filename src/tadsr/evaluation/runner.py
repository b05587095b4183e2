"""Evaluate a folder of results: pair files by name, compute metrics per image and the mean."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tadsr.evaluation.brisque import load_svr
from tadsr.evaluation.metrics import canonical_name, metric_function, metric_spec, metric_status
from tadsr.utils.files import IMAGE_SUFFIXES, atomic_write, file_problem
from tadsr.utils.files import list_images as list_image_files

DEFAULT_FR_METRICS = ("psnr", "ssim", "niqe", "brisque")
DEFAULT_NR_METRICS = ("niqe", "brisque")


class EvalInputError(Exception):
    """Bad input files (missing, unreadable, unpaired, mismatched sizes): exit status 1."""


class EvalUsageError(Exception):
    """Bad arguments (e.g. a full-reference metric without --hr): exit status 2."""


def list_images(path: str | os.PathLike) -> list[Path]:
    """Image files of a folder (sorted by name), or the file itself."""
    p = Path(path)
    problem = file_problem(p)  # stat only: a FIFO or a device is never opened
    if problem is None:
        return [p]
    if problem != "is a folder, not a file":
        why = "no such file or folder" if problem == "no such file" else problem
        raise EvalInputError(f"{p}: {why}")
    files = list_image_files(p)
    if not files:
        raise EvalInputError(f"{p}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_rgb_uint8(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (gray replicated, alpha dropped, 16-bit scaled)."""
    from tadsr.inference.imageio import DEFAULT_MAX_PIXELS

    try:
        with Image.open(path) as img:
            w, h = img.size  # from the header: refuse a decompression bomb before decoding
            if w * h > DEFAULT_MAX_PIXELS:
                raise EvalInputError(
                    f"{path}: {w}x{h} is over the pixel limit of {DEFAULT_MAX_PIXELS:,}"
                )
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
                return np.repeat(arr[:, :, None], 3, axis=2)
            if img.mode == "F":
                raise EvalInputError(f"{path}: floating-point images are not supported")
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise EvalInputError(f"{path}: cannot read image ({exc})") from None


def pair_files(sr: Sequence[Path], hr: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Pair SR and HR files by name without extension; any unpaired file is an error."""
    if len(sr) == 1 and len(hr) == 1:
        return [(sr[0], hr[0])]

    def by_stem(files: Iterable[Path], side: str) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for f in files:
            if f.stem in out:
                raise EvalInputError(f"{side}: two files named {f.stem!r}: {out[f.stem]} and {f}")
            out[f.stem] = f
        return out

    sr_map, hr_map = by_stem(sr, "--sr"), by_stem(hr, "--hr")
    no_hr = sorted(set(sr_map) - set(hr_map))
    no_sr = sorted(set(hr_map) - set(sr_map))
    if no_hr:
        more = f" (and {len(no_hr) - 1} more)" if len(no_hr) > 1 else ""
        raise EvalInputError(f"{sr_map[no_hr[0]]}: no HR image with the same name{more}")
    if no_sr:
        more = f" (and {len(no_sr) - 1} more)" if len(no_sr) > 1 else ""
        raise EvalInputError(f"{hr_map[no_sr[0]]}: no SR image with the same name{more}")
    return [(sr_map[k], hr_map[k]) for k in sorted(sr_map)]


def resolve_metrics(metrics: Sequence[str] | None, has_hr: bool) -> list[str]:
    """Canonical metric names; defaults depend on whether references are given."""
    if not metrics:
        return list(DEFAULT_FR_METRICS if has_hr else DEFAULT_NR_METRICS)
    names: list[str] = []
    for m in metrics:
        try:
            key = canonical_name(m)
        except ValueError as exc:
            raise EvalUsageError(str(exc)) from None
        if metric_spec(key).full_reference and not has_hr:
            raise EvalUsageError(f"metric {key!r} needs reference images (--hr)")
        if key not in names:
            names.append(key)
    return names


def _mean(values: list[float]) -> float:
    """Mean over the images where the metric could run (NaN marks n/a); NaN if none."""
    known = [v for v in values if not math.isnan(v)]
    return float(np.mean(known)) if known else math.nan


def compute_metrics(
    sr_dir: str | os.PathLike,
    hr_dir: str | os.PathLike | None = None,
    metrics: Sequence[str] | None = None,
    crop_border: int = 4,
    device: str = "cpu",
    brisque_model: str | None = None,
) -> dict:
    """Metrics of every SR image (paired by name with ``hr_dir`` when given) and their mean.

    Returns ``{"metrics": [...], "per_image": {file name: {metric: value}}, "mean":
    {metric: value}, "count": n, "unavailable": {metric: ["file: reason", ...]}, "skipped":
    {metric: reason}, "failed":
    ["file: reason", ...]}`` (images that could not be read: the others are still measured;
    EvalInputError when none could); a metric
    that cannot run on an image (too small for NIQE, say) is NaN there, "n/a" in the table,
    and left out of the mean. BRISQUE in the default list without a usable model file
    (``brisque_model``, see brisque.py) is left out, with the reason in ``"skipped"``;
    asked for by name, it is an EvalInputError. Raises EvalInputError (bad files,
    unavailable metric) or EvalUsageError (bad request).
    """
    names = resolve_metrics(metrics, hr_dir is not None)
    skipped: dict[str, str] = {}
    if "brisque" in names and not metrics:  # in the default list, not asked for by name
        try:
            load_svr(brisque_model)
        except RuntimeError as exc:
            skipped["brisque"] = str(exc)
            names.remove("brisque")
    status = {n: metric_status(n, brisque_model) for n in names}
    missing = [status[n][1] for n in names if not status[n][0]]
    if missing:
        raise EvalInputError("; ".join(missing))
    fns = {}
    for n in names:
        try:
            fns[n] = metric_function(
                n, crop_border=crop_border, device=device, brisque_model=brisque_model
            )
        except RuntimeError as exc:
            raise EvalInputError(str(exc)) from None
    sr_files = list_images(sr_dir)
    if hr_dir is not None:
        pairs: list[tuple[Path, Path | None]] = list(pair_files(sr_files, list_images(hr_dir)))
    else:
        pairs = [(f, None) for f in sr_files]
    per_image: dict[str, dict[str, float]] = {}
    unavailable: dict[str, list[str]] = {}
    failed: list[str] = []  # one bad image is reported, the others are still measured
    for sr_path, hr_path in pairs:
        try:
            sr = read_rgb_uint8(sr_path)
            hr = read_rgb_uint8(hr_path) if hr_path is not None else None
            if hr is not None and sr.shape != hr.shape:
                raise EvalInputError(
                    f"{sr_path}: size {sr.shape[1]}x{sr.shape[0]} differs from "
                    f"{hr_path} ({hr.shape[1]}x{hr.shape[0]})"
                )
        except EvalInputError as exc:
            failed.append(str(exc))
            continue
        row: dict[str, float] = {}
        for n, fn in fns.items():
            try:
                row[n] = float(fn(sr, hr))
            except ValueError as exc:  # e.g. NIQE on an image smaller than its patches
                row[n] = math.nan
                unavailable.setdefault(n, []).append(f"{sr_path.name}: {exc}")
        per_image[sr_path.name] = row
    if failed and not per_image:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise EvalInputError(failed[0] + more)
    mean = {n: _mean([row[n] for row in per_image.values()]) for n in names}
    return {
        "failed": failed,
        "metrics": names,
        "per_image": per_image,
        "mean": mean,
        "count": len(per_image),
        "unavailable": unavailable,
        "skipped": skipped,
    }


def _jsonable(obj):
    """Replace non-finite floats by the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as strict JSON, atomically (creating the folder)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")
    return target
