"""The README's side-by-side picture: bicubic | default student | teacher | original, for the
README's example input (examples/astronaut_lr.png, 80x80 -> 320x320).

    python scripts/readme_figure.py [--teacher-steps 4] [--out docs/images/astronaut_x4.jpg]

Needs scikit-image for the original (the example is its astronaut, cropped at x 96, y 0).
Prints PSNR-Y (4-px crop) of each panel against the original.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tadsr import Upscaler
from tadsr.evaluation.fullref import psnr_y

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lr", default=str(ROOT / "examples" / "astronaut_lr.png"))
    ap.add_argument("--teacher-steps", type=int, default=4)
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "astronaut_x4.jpg"))
    args = ap.parse_args()
    from skimage import data

    hr = data.astronaut()[0:320, 96:416]
    lr = Image.open(args.lr).convert("RGB")
    panels = [
        ("bicubic", lr.resize((320, 320), Image.BICUBIC)),
        ("tadsr-small (default, 1 step)", Upscaler.from_pretrained()(lr)),
        (
            f"teacher, {args.teacher_steps} steps",
            Upscaler.from_pretrained("tadsr-small-teacher", steps=args.teacher_steps)(lr),
        ),
        ("original", Image.fromarray(hr)),
    ]
    w, h, bar = 320, 320, 18
    sheet = Image.new("RGB", (w * len(panels), h + bar), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(panels):
        sheet.paste(im, (i * w, bar))
        score = psnr_y(np.asarray(im), hr, crop_border=4) if label != "original" else None
        text = label + (f"  {score:.2f} dB" if score is not None else "")
        draw.text((i * w + 4, 3), text, fill="black")
        print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # JPEG at quality 95 without chroma subsampling: a quarter of the PNG size (README
    # pictures stay under 300 KB); the differences between the panels are far larger.
    sheet.save(out, quality=95, subsampling=0)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
