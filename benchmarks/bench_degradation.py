"""Throughput of degraded 256-pixel training pairs (crop + degradation), pairs per second.

    python benchmarks/bench_degradation.py [--root data/photos] [--batch 16] [--iters 8]
        [--threads 2] [--device cpu] [--degradation realesrgan bicubic face]

Without a corpus folder it falls back to scikit-image's photographs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tadsr.data.datasets import CropDataset, make_training_pairs
from tadsr.data.degradation import build_degradation


def _fallback_folder() -> Path:
    from PIL import Image
    from skimage import data

    d = Path(tempfile.mkdtemp(prefix="tadsr-bench-"))
    for name in ("astronaut", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).save(d / f"{name}.png")
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", default="data/photos")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--degradation", nargs="+", default=["realesrgan", "bicubic", "face"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.root)
    if not root.is_dir():
        root = _fallback_folder()
    device = torch.device(args.device)
    ds = CropDataset(root, crop_size=args.size, split="train", length=10**6)
    n = args.batch * args.iters
    for i in range(n):  # decode every photo up front: measure crops + degradation only
        ds[i]
    print(
        f"corpus {root}: {len(ds.paths)} photos; torch threads {torch.get_num_threads()}; "
        f"device {device}; batch {args.batch}"
    )
    for name in args.degradation:
        deg = build_degradation(name)
        g = torch.Generator().manual_seed(0)
        warm = torch.stack([ds[i] for i in range(args.batch)]).to(device)
        make_training_pairs(warm, deg, g)
        times = []
        for it in range(args.iters):
            t0 = time.perf_counter()
            hr = torch.stack([ds[it * args.batch + j] for j in range(args.batch)]).to(device)
            lr, _ = make_training_pairs(hr, deg, g)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(
            f"{name:12s} {n / sum(times):8.1f} pairs/s mean, {args.batch / med:8.1f} at the "
            f"median batch ({med * 1000:.0f} ms), lr {tuple(lr.shape)}"
        )


if __name__ == "__main__":
    main()
