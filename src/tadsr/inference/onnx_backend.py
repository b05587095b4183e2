"""The onnxruntime backend of `tadsr upscale`: the exported student (`onnx_export`) run
without importing torch, tiled like the torch backend (`tiling.run_tiled`).

    pip install 'tadsr[onnx]'
    tadsr export tadsr-small --format onnx -o student.onnx
    tadsr upscale photo.png -o out --backend onnxruntime --model student.onnx

`--backend onnxruntime` with a bundled name or a .safetensors model exports it once (that
run imports torch) into a cache folder ($TADSR_CACHE, else $XDG_CACHE_HOME/tadsr, else
~/.cache/tadsr), keyed by the model file's SHA-256 and the package version (and, for a blend
of the fidelity dial, F and the endpoint file's SHA-256); later runs load the cached graph
and never import torch.

The noise is drawn on the host with numpy, in the same fixed blocks and from the same
generator as the torch backend (`BlockNoise`), and fed to the graph as an input: a seed gives
the same picture on every machine and tiling, and the same picture as `--backend torch` at
the same fidelity (within one level of 255; the graph computes in float32 like torch). Alpha
is resized with Pillow's bicubic filter. --outscale and --color-fix need the torch backend.
The session itself (`OnnxStudent`) is in `onnx_session`, which `onnx_export` uses too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tadsr.inference.core import RowWriter, UpscaleOptions
from tadsr.inference.imageio import Picture, read_image, write_image
from tadsr.inference.onnx_session import OnnxStudent, onnxruntime_available
from tadsr.inference.tiling import BlockNoise, auto_tile_size, run_tiled
from tadsr.utils.files import sha256_file

__all__ = ["OnnxStudent", "OnnxUpscaler", "cached_onnx", "onnxruntime_available"]

# part of the cache key: raise it when the exported graph changes for the same model file
GRAPH_VERSION = 1


def _fresh_seed() -> int:
    """A seed from the OS's entropy (what SeedSequence() draws: an int when given none)."""
    entropy = np.random.SeedSequence().entropy
    assert isinstance(entropy, int)
    return entropy % 2**63


class OnnxUpscaler:
    """`Upscaler`'s file / picture interface on the onnxruntime backend."""

    kind = "student"

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, **options: Any
    ) -> None:
        self.options = UpscaleOptions(**options)
        self.options.validate()
        o = self.options
        resized = o.outscale is not None or o.width is not None
        if resized or o.color_fix != "none" or o.steps not in (None, 1):
            raise ValueError(
                "the onnxruntime backend runs the one-step student at x4 without colour fix "
                "(--outscale, --width, --color-fix and --steps need --backend torch)"
            )
        self.student = OnnxStudent(path, threads)
        self.scale = self.student.scale

    def __repr__(self) -> str:
        tile = "auto" if self.options.tile is None else (self.options.tile or "off")
        path, seed = str(self.student.path), self.options.seed
        return f"OnnxUpscaler(model={path!r}, backend=onnxruntime, tile={tile}, seed={seed})"

    def upscale_file(self, src: str | os.PathLike, dst: str | os.PathLike) -> Picture:
        pic = read_image(src, max_pixels=self.options.max_pixels)
        write_image(dst, self.upscale_picture(pic))
        return pic

    def upscale_picture(self, pic: Picture) -> Picture:
        opts, s = self.options, self.scale
        h, w = pic.height, pic.width
        lq = pic.color.astype(np.float32).transpose(2, 0, 1)[None]
        lq *= np.float32(1.0 / pic.max_value)
        if pic.gray:
            lq = np.repeat(lq, 3, axis=1)
        seed = _fresh_seed() if opts.seed is None else opts.seed
        noise = BlockNoise((1, self.student.noise_channels, h, w), seed)
        tile = opts.tile if opts.tile is not None else auto_tile_size("cpu", h, w)
        halo = opts.tile_pad if opts.tile_pad is not None else self.student.halo

        def fn(window: np.ndarray, noise_window: np.ndarray) -> np.ndarray:
            sr = self.student.run(window, noise_window)
            sr *= 2.0
            sr -= 1.0
            return sr

        sink = RowWriter(pic, s)
        run_tiled(fn, lq, scale=s, sink=sink, tile=tile, overlap=opts.tile_overlap, halo=halo,
                  noise=noise)  # fmt: skip
        alpha = None
        if pic.alpha is not None:
            alpha = _resize_alpha(pic.alpha, h * s, w * s)
        text = None if self.student.fidelity is None else {
            "tadsr:fidelity": self.student.fidelity}  # fmt: skip
        return Picture(sink.out, alpha, text=text)


def _resize_alpha(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    maxv = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(plane.dtype, 1.0)
    img = Image.fromarray(plane.astype(np.float32), mode="F")
    out = np.asarray(img.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    out = np.clip(out, 0, maxv)
    return out if plane.dtype == np.float32 else np.rint(out).astype(plane.dtype)


def cache_dir() -> Path:
    base = os.environ.get("TADSR_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tadsr"


def _cache_entry_ok(out: Path) -> bool:
    """Whether a cached export is whole: its size and SHA-256 are those recorded beside it
    (OUT.json) when it was written; a cut or changed file, or no record, is not."""
    import json

    try:
        record = json.loads(out.with_name(out.name + ".json").read_text())
        return (out.stat().st_size == record["size"]
                and sha256_file(out) == record["sha256"])  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _warn(message: str) -> None:
    import sys

    print(f"tadsr: warning: {message}", file=sys.stderr)


def cached_onnx(
    model: str | None,
    fidelity: float | None = None,
    fidelity_endpoint: str | None = None,
    *,
    warn=_warn,
) -> Path:
    """The ONNX file of a model: itself if it is an .onnx file, else its export in the cache
    (made now, with torch, if missing or not whole). A fidelity (None: the registry's
    default) blends the model with its endpoint first; the cache key then holds F and the
    endpoint's digest. When the cache folder cannot be written, the export goes to a
    temporary folder removed at exit, and `warn` gets one line."""
    import json
    import tempfile

    from tadsr._version import __version__
    from tadsr.models import resolve_model
    from tadsr.models.fidelity import fidelity_plan
    from tadsr.utils.files import atomic_write

    path = resolve_model(model)
    if path.suffix.lower() == ".onnx":
        return path
    f, endpoint = fidelity_plan(model, fidelity, fidelity_endpoint, fixed=True)
    if isinstance(f, str):  # "auto", the one string a fidelity can be
        raise ValueError("fidelity 'auto' picks F per image, which the ONNX graph cannot")
    digest = sha256_file(path)[:16]
    if f is not None:
        digest += f"-f{f:.4f}-{sha256_file(resolve_model(endpoint))[:16]}"
    name = f"{path.stem}-{digest}-tadsr{__version__}-g{GRAPH_VERSION}.onnx"
    out = cache_dir() / "onnx" / name
    if _cache_entry_ok(out):
        return out
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise ValueError(
            f"{path.name} must be exported to ONNX first, which needs the onnx package "
            "(pip install 'tadsr[onnx]'), or give an .onnx file from `tadsr export`"
        )
    from tadsr.inference.onnx_export import export_onnx

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        import atexit
        import shutil

        folder = Path(tempfile.mkdtemp(prefix="tadsr-onnx-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        warn(f"cannot write the ONNX cache {out.parent} ({exc.strerror or exc}); exporting "
             f"{path.name} to a temporary file for this run (set TADSR_CACHE to a writable "
             "folder)")  # fmt: skip
        out = folder / name
        export_onnx(str(path), out, fidelity=f, fidelity_endpoint=endpoint)
        return out
    export_onnx(str(path), out, fidelity=f, fidelity_endpoint=endpoint)
    record = {"size": out.stat().st_size, "sha256": sha256_file(out)}
    with atomic_write(out.with_name(out.name + ".json")) as tmp:
        tmp.write_text(json.dumps(record) + "\n")
    return out
