"""Time the full-size SR SwinUNet (random weights) on CPU: fp32, bf16 autocast, bf16 weights.

Usage: nice python benchmarks/bench_unet.py [--size 64] [--batch 1] [--runs 5] [--threads N]
Prints the parameter count and the median ms per forward after one warm-up call.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tadsr.nets.unet import UNET_PRESETS, SwinUNet


def _median_ms(fn, runs: int) -> float:
    fn()  # warm-up (also fills the Swin mask caches)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="sr", choices=sorted(UNET_PRESETS))
    ap.add_argument("--size", type=int, default=64, help="latent height = width")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = UNET_PRESETS[args.preset]
    net = SwinUNet(cfg).eval()
    b, s = args.batch, args.size
    lq_side = s * cfg.lq_size // cfg.image_size
    x = torch.randn(b, cfg.in_channels, s, s)
    lq = torch.randn(b, cfg.lq_channels, lq_side, lq_side)
    t = torch.full((b,), 14, dtype=torch.long)
    print(
        f"preset {args.preset}: {net.num_parameters():,} parameters; batch {b}, latent {s}x{s}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    with torch.inference_mode():
        fp32 = _median_ms(lambda: net(x, t, lq), args.runs)
        print(f"fp32              {fp32:9.1f} ms/forward")

        def autocast_call() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(x, t, lq)

        amp = _median_ms(autocast_call, args.runs)
        print(f"bf16 autocast     {amp:9.1f} ms/forward")
        net_bf16 = net.to(torch.bfloat16)
        xb, lqb = x.bfloat16(), lq.bfloat16()
        bf16 = _median_ms(lambda: net_bf16(xb, t, lqb), args.runs)
        print(f"bf16 weights      {bf16:9.1f} ms/forward")


if __name__ == "__main__":
    main()
