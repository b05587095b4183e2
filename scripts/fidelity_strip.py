"""The README's strip of the fidelity dial: one region of a validation photo upscaled x4 from
its LR version (whole photo in, the region cut out after) at several F, between bicubic and
the original, with each panel's PSNR-Y on the region printed.

    python scripts/fidelity_strip.py [--photo chelsea] [--kind heavy] [--box 100,90,200] \
        [--out docs/images/fidelity_strip.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FS = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    from tadsr import Upscaler
    from tadsr.evaluation.fullref import psnr_y

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--val", default="data/photo_val")
    ap.add_argument("--photo", default="chelsea")
    ap.add_argument("--kind", default="heavy", help="clean, real or heavy")
    ap.add_argument("--box", default="100,90,200", help="x,y,size of the region in HR pixels")
    ap.add_argument("--out", default="docs/images/fidelity_strip.jpg")
    args = ap.parse_args()
    x, y, s = (int(v) for v in args.box.split(","))
    val = Path(args.val)
    lr = Image.open(val / f"lr_{args.kind}" / f"{args.photo}.png").convert("RGB")
    hr = Image.open(val / "hr" / f"{args.photo}.png").convert("RGB")
    panels = [("LR (bicubic x4)", lr.resize(hr.size, Image.BICUBIC))]
    for f in FS:
        up = Upscaler.from_pretrained(fidelity=f, dtype="fp32", seed=0, tile=0)
        panels.append((f"F = {f:g}", up(lr)))
    panels.append(("original", hr))
    box = (x, y, x + s, y + s)
    crops = [(label, im.crop(box)) for label, im in panels]
    ref = np.asarray(crops[-1][1])
    sheet = Image.new("RGB", (s * len(crops), s + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(crops):
        sheet.paste(im, (i * s, 16))
        draw.text((i * s + 3, 2), label, fill="black")
        if i < len(crops) - 1:
            print(f"{label:16s} PSNR-Y on the region {psnr_y(np.asarray(im), ref):.2f} dB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=90)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
