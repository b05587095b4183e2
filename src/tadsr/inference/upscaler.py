"""`Upscaler`: x4 super-resolution of PIL images, numpy arrays and files, tiled when large.

    from tadsr import Upscaler
    up = Upscaler.from_pretrained()          # the bundled one-step student
    out = up(image)                          # PIL in -> PIL out, numpy in -> numpy out

The image is turned into a (1, 3, h, w) tensor in [-1, 1] (gray is run as RGB and turned
back into gray with the ITU-R BT.601 luma weights 0.299, 0.587, 0.114), run through the
pipeline in overlapping tiles (see `tiling`), and the finished rows are quantised straight
into the output array, so a 2048 x 2048 input never needs an 8192 x 8192 float canvas.
The noise is one field over the whole image's latent, drawn from `seed` in fixed 64-pixel
blocks (`BlockNoise`, with numpy on the host: the onnxruntime backend draws the same, so a
seed gives one picture on both) and cut per tile, so tiled and untiled runs see the same
noise, the result never depends on the tiling or on which process ran it, and the 805 MB
noise of a 2048-pixel image is never held at once. Alpha is not sent through the network: it is
resized with bicubic interpolation (antialiased when shrinking) straight to the output size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.inference.colorfix import apply_color_fix
from tadsr.inference.core import LUMA_WEIGHTS, RowWriter, UpscaleOptions
from tadsr.inference.imageio import (
    Picture,
    picture_from_array,
    picture_from_pil,
    picture_to_array,
    picture_to_pil,
    read_image,
    write_image,
)
from tadsr.inference.tiling import BlockNoise, NoiseWindow, auto_tile_size, run_tiled

__all__ = ["LUMA_WEIGHTS", "Upscaler", "UpscaleOptions"]


class Upscaler:
    """Super-resolve images with an `SRPipeline` (or any object with its contract)."""

    def __init__(self, pipeline: Any, **options: Any) -> None:
        self.pipeline = pipeline
        self.options = UpscaleOptions(**options)
        self.options.validate(pipeline.kind, getattr(pipeline, "max_steps", None))
        if self.options.fidelity is not None and getattr(pipeline, "dial", None) is None:
            raise ValueError(
                "fidelity: this model was loaded without a fidelity dial "
                "(Upscaler.from_pretrained(..., fidelity=F) loads one)"
            )
        self.last_fidelity: float | None = None  # the F of the last image (None: no dial)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        *,
        autoencoder: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        fidelity: float | str | None = None,
        fidelity_endpoint: str | os.PathLike | None = None,
        **options: Any,
    ) -> Upscaler:
        """Load a bundled model name, our .safetensors, an official .pth (+ autoencoder) or a
        training checkpoint.

        `fidelity` F in [0, 1] blends the one-step student's weights with its faithful
        endpoint's, w = (1 - F) w_student + F w_endpoint, once, here: 0 is the most
        realistic (the student), 1 the most faithful. "auto" picks F per image from its
        noise and JPEG blockiness (noisier -> higher F; `tadsr.inference.fidelity`); the
        F used is `last_fidelity` after each call (and a PIL result's info["tadsr:fidelity"]).
        None: the registry's default_fidelity of a bundled model. `fidelity_endpoint`: the
        endpoint file for your own student (a bundled model's is in the registry)."""
        from tadsr.pipeline import SRPipeline
        from tadsr.utils.device import pick_device, pick_dtype

        dev = pick_device(device)
        pipe = SRPipeline.from_pretrained(
            None if name_or_path is None else os.fspath(name_or_path),
            autoencoder=None if autoencoder is None else os.fspath(autoencoder),
            device=dev,
            dtype=pick_dtype(dtype, dev),
            fidelity=fidelity,
            fidelity_endpoint=None if fidelity_endpoint is None else str(fidelity_endpoint),
        )
        return cls(pipe, **options)

    @property
    def steps(self) -> int:
        """The sampling steps a call runs, resolved here once: the steps option, else the
        pipeline's default (1 for a student, or for a pipeline that has none)."""
        return self.options.steps or getattr(self.pipeline, "default_steps", None) or 1

    def __repr__(self) -> str:
        p, o = self.pipeline, self.options
        steps = self.steps
        tile = "auto" if o.tile is None else (o.tile or "off")
        return (
            f"Upscaler(model={getattr(p, 'source', '?')!r}, kind={p.kind}, steps={steps}, "
            f"scale=x{self.scale}, device={getattr(p, 'device', '?')}, "
            f"dtype={str(getattr(p, 'dtype', '?')).replace('torch.', '')}, tile={tile}, "
            f"seed={o.seed})"
        )

    @property
    def scale(self) -> int:
        return int(self.pipeline.scale)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) of the result for an LR image of height x width."""
        if self.options.width is not None:  # the height in proportion
            w = self.options.width
            return max(1, round(height * w / width)), w
        s = self.options.outscale or self.scale
        return max(1, round(height * s)), max(1, round(width * s))

    # -- public entry points -------------------------------------------------------
    def __call__(self, image: Any) -> Any:
        """Upscale a PIL image (-> PIL image) or a numpy array (-> numpy array, same layout).

        PIL modes L, LA, RGB, RGBA, I;16 come back in the same mode ("P" and "CMYK" as
        RGB(A), "1" as L); numpy (H, W) or (H, W, 1|2|3|4) uint8 / uint16 / float in [0, 1]
        come back with the same shape convention and dtype. Pixels are taken as given (no
        EXIF rotation here; `read_image` and `upscale_file` apply it).
        """
        from PIL import Image

        if isinstance(image, Image.Image):
            out = self.upscale_picture(picture_from_pil(image))
            img = picture_to_pil(out)
            img.info.update(out.text or {})
            return img
        if isinstance(image, np.ndarray):
            pic, layout = picture_from_array(image)
            return picture_to_array(self.upscale_picture(pic), layout)
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")

    def upscale_file(self, src: str | os.PathLike, dst: str | os.PathLike) -> Picture:
        """Read `src`, upscale, write `dst` atomically; returns the input picture (for notes)."""
        pic = read_image(src, max_pixels=self.options.max_pixels)
        out = self.upscale_picture(pic)
        write_image(dst, out)
        return pic

    def upscale_picture(
        self, pic: Picture, on_progress: Callable[[int, int], None] | None = None
    ) -> Picture:
        """Upscale a Picture; colour through the network, alpha by bicubic resizing.

        `on_progress(done, total)` is called before the work starts (done 0) and after each
        sampling step (tiles x sampling steps, from the sampler's callback); an exception it
        raises stops the run and propagates (a way to cancel). It does not change the result.
        """
        h, w = pic.height, pic.width
        s = self.scale
        out_h, out_w = self.output_size(h, w)
        text = self._set_fidelity(pic)
        color = self._run_network(pic, on_progress)
        if (out_h, out_w) != (h * s, w * s):
            color = np.stack(
                [_resize_plane(color[..., c], out_h, out_w) for c in range(color.shape[2])], axis=2
            )
        alpha = None if pic.alpha is None else _resize_plane(pic.alpha, out_h, out_w)
        return Picture(color, alpha, text=text)

    def upscale_tensor(self, lq: Tensor) -> Tensor:
        """(1, 3, h, w) in [-1, 1] -> (1, 3, 4h, 4w) in [-1, 1], tiled as configured."""
        parts: list[np.ndarray] = []
        self._run_tiles(lq, lambda _row, rows: parts.append(rows.copy()))
        return torch.from_numpy(np.concatenate(parts, axis=1)[None])

    # -- internals -----------------------------------------------------------------
    def _set_fidelity(self, pic: Picture) -> dict[str, str] | None:
        """Blend the dial's weights for this image (its own F under "auto"); the PNG text
        that records it (None without a dial)."""
        dial = getattr(self.pipeline, "dial", None)
        if dial is None:
            return None
        f = self.options.fidelity
        f = self.pipeline.fidelity if f is None else f
        auto = f == "auto"
        if auto:
            from tadsr.inference.fidelity import estimate_fidelity

            f = estimate_fidelity(pic.color, pic.max_value)
        assert isinstance(f, (int, float)), f  # parse_fidelity: a number or "auto"
        dial.set(f)
        self.last_fidelity = f
        return {"tadsr:fidelity": f"{f:g} (auto)" if auto else f"{f:g}"}

    def _run_network(self, pic: Picture, on_progress=None) -> np.ndarray:
        h, w = pic.height, pic.width
        s = self.scale
        color = pic.color if pic.color.flags.writeable else pic.color.copy()
        lq = torch.from_numpy(color).permute(2, 0, 1)[None].float()
        lq = lq.mul_(2.0 / pic.max_value).sub_(1.0)
        if pic.gray:
            lq = lq.expand(1, 3, h, w)
        sink = RowWriter(pic, s)
        self._run_tiles(lq, sink, on_progress)
        return sink.out

    def _run_tiles(self, lq: Tensor, sink, on_progress=None) -> int:
        opts, pipe = self.options, self.pipeline
        h, w = lq.shape[-2:]
        seed = torch.Generator().seed() if opts.seed is None else int(opts.seed)
        # The prior noise, and a teacher's per-step noise as the sampler asks for it, are
        # C-channel groups of one BlockNoise window (`NoiseWindow`): every tile cuts the same
        # noise at every step, so a tiled run does not depend on the tile layout or order.
        noise = BlockNoise(pipe.noise_shape(h, w, 1), seed).stepped()
        tile = opts.tile if opts.tile is not None else auto_tile_size(pipe.device, h, w)
        halo = opts.tile_pad if opts.tile_pad is not None else int(pipe.receptive_halo())
        bar = None
        if opts.progress and tile and max(h, w) > tile:
            from tqdm import tqdm

            n = _count_tiles(h, w, tile, opts.tile_overlap)
            bar = tqdm(total=n, desc="tiles", unit="tile", leave=False, position=1)
        on_tile = bar.update if bar is not None else None
        extra: dict[str, Any] = {}  # a pipeline is only asked for a callback when one is used
        if on_progress is not None:
            on_tile, extra["callback"] = self._progress(on_progress, h, w, tile, on_tile)

        def fn(window: Tensor, noise_window: NoiseWindow) -> Tensor:
            prior = torch.as_tensor(noise_window.prior)
            step_noise = _as_tensors(noise_window.step)
            sr = pipe(window, noise=prior, steps=opts.steps, step_noise=step_noise, **extra)
            return apply_color_fix(opts.color_fix, sr, window)

        try:
            return run_tiled(
                fn,
                lq,
                scale=self.scale,
                sink=sink,
                tile=tile,
                overlap=opts.tile_overlap,
                halo=halo,
                noise=noise,
                on_tile=on_tile,
            )
        finally:
            if bar is not None:
                bar.close()

    def _progress(self, on_progress, h: int, w: int, tile: int, on_tile):
        """(on_tile, sampler callback) reporting network evaluations to on_progress(done,
        total): each finished sampling step (the sampler's callback) and each finished tile
        (which sets the count to the tiles done x steps, for a pipeline that ran fewer)."""
        steps = self.steps
        tiles = _count_tiles(h, w, tile, self.options.tile_overlap) if tile else 1
        total = tiles * steps
        state = {"tiles": 0, "done": 0}

        def report(done: int) -> None:
            if done != state["done"] or done == 0:
                state["done"] = done
                on_progress(done, total)

        report(0)

        def step_done(i: int, _x, _x0) -> None:
            report(state["tiles"] * steps + min(i + 1, steps))

        def tile_done() -> None:
            if on_tile is not None:
                on_tile()
            state["tiles"] += 1
            report(state["tiles"] * steps)

        return tile_done, step_done


def _as_tensors(step):
    """A NoiseWindow's `step(i, shape)` giving tensors (the windows are numpy arrays)."""
    return lambda i, shape: torch.as_tensor(step(i, shape))


def _count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    from tadsr.inference.tiling import tile_spans

    ov = min(overlap, tile - 1)
    return len(tile_spans(h, tile, ov)) * len(tile_spans(w, tile, ov))


def _resize_plane(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of one (H, W) plane, antialiased when shrinking; dtype kept."""
    if plane.shape == (height, width):
        return plane
    maxv = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(plane.dtype, 1.0)
    x = torch.from_numpy(plane.astype(np.float32))[None, None]
    shrink = height < plane.shape[0] or width < plane.shape[1]
    y = F.interpolate(
        x, size=(height, width), mode="bicubic", align_corners=False, antialias=shrink
    )[0, 0].clamp_(0, maxv)
    if plane.dtype == np.float32:
        return y.numpy()
    return y.round_().to(torch.int32).numpy().astype(plane.dtype)
