"""Benchmark of `tadsr upscale` (not a test): overhead, student vs teacher, peak memory.

    python benchmarks/bench_upscale.py                 # all three, bundled models
    python benchmarks/bench_upscale.py --skip-memory   # no 2048 x 2048 run

1. overhead: the full file-to-file path (decode PNG, tensors, pipeline, quantise, encode PNG)
   over the network + codec alone (`SRPipeline.__call__` on the same tensor); target <= 1.1.
2. student vs teacher: one-step student vs the 15-step teacher on the same image; target >= 10.
3. peak memory: a fresh process upscales a 2048 x 2048 PNG to 8192 x 8192 (automatic tiles)
   and reports its peak resident set (ru_maxrss); target < 2 GB on CPU.

Times are process CPU time by default (all threads; robust on a shared machine), or wall
time with --clock wall; each is the fastest of interleaved repeats.

Uses the bundled models when present; otherwise an UNTRAINED network of the bundled
architecture (random weights: same cost, meaningless pixels), and says so in its output.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _photo(size: int) -> np.ndarray:
    try:
        from skimage import data

        img = Image.fromarray(data.astronaut())
    except ImportError:  # a smooth synthetic picture
        yy, xx = np.mgrid[0:512, 0:512]
        arr = np.stack([xx / 2, yy / 2, (xx + yy) / 4], axis=2) % 256
        img = Image.fromarray(arr.astype(np.uint8))
    return np.asarray(img.resize((size, size), Image.BICUBIC))


def load(name: str | None, kind: str, device: str):
    """(pipeline, label): the named / bundled model, else the untrained bundled architecture."""
    from tadsr.pipeline import SRPipeline

    try:
        pipe = SRPipeline.from_pretrained(name, device=device)
        return pipe, f"{name or 'bundled student'} ({pipe.kind})"
    except Exception as exc:  # no bundled model yet
        reason = str(exc).splitlines()[0]
    from tadsr.diffusion import SCHEDULE_PRESETS, Process
    from tadsr.nets.codec import PixelUnshuffleCodec
    from tadsr.nets.unet import SwinUNet
    from tadsr.train.config import SMALL_UNET

    torch.manual_seed(0)
    net = SwinUNet(SMALL_UNET)
    pipe = SRPipeline(net, PixelUnshuffleCodec(4), Process(SCHEDULE_PRESETS["sr"]), kind=kind,
                      device=device)  # fmt: skip
    n = sum(p.numel() for p in net.parameters())
    return pipe, (f"UNTRAINED SMALL_UNET {kind} ({n / 1e6:.2f} M params, random weights; "
                  f"{name or 'bundled model'} unavailable: {reason})")  # fmt: skip


def _best_times(fns, repeats: int) -> list[float]:
    """Fastest of `repeats` runs of each function, interleaved.

    Time is CPU time of this process (all threads, time.process_time) when --clock cpu (the
    default: robust on a machine shared with other jobs), else wall time.
    """
    clock = time.process_time if CLOCK[0] == "cpu" else time.perf_counter
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = clock()
            fn()
            best[i] = min(best[i], clock() - t)
    return best


CLOCK = ["cpu"]


def _model_file(pipe, tmp: Path, name: str | None) -> str:
    """A --model argument for the command: the given name, else the fallback saved to tmp."""
    if "UNTRAINED" not in getattr(pipe, "_bench_label", ""):
        return name or "tadsr-small"
    from tadsr.checkpoints.io import save_model
    from tadsr.diffusion import SCHEDULE_PRESETS

    path = tmp / "untrained.safetensors"
    save_model(path, unet=pipe.net, codec=pipe.codec, schedule=SCHEDULE_PRESETS["sr"],
               kind="sr_student", steps=1, dtype=None)  # fmt: skip
    return str(path)


def bench_overhead(args) -> dict:
    from tadsr.cli import main as tadsr_main
    from tadsr.inference.upscaler import Upscaler

    pipe, label = load(args.model, "student", args.device)
    pipe._bench_label = label
    up = Upscaler(pipe, seed=0)
    arr = _photo(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, dst = tmp / "in.png", tmp / "out.png"
        Image.fromarray(arr).save(src)
        lq = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
        noise = torch.randn(pipe.noise_shape(args.size, args.size), generator=torch.Generator())
        t_net, t_full = _best_times(
            [lambda: pipe(lq, noise=noise), lambda: up.upscale_file(src, dst)], args.repeats
        )
        # the command over a batch: per-image cost = (T(k images) - T(1 image)) / (k - 1),
        # which removes start-up and model loading; reading and writing overlap the network
        model = _model_file(pipe, tmp, args.model)
        k = args.batch
        (tmp / "one").mkdir()
        (tmp / "many").mkdir()
        Image.fromarray(arr).save(tmp / "one" / "im0.png")
        for i in range(k):
            Image.fromarray(np.roll(arr, i, axis=1)).save(tmp / "many" / f"im{i}.png")

        def command(folder: str) -> None:
            argv = ["upscale", str(tmp / folder), "-o", str(tmp / "out"), "-q", "--overwrite",
                    "--model", model, "--device", args.device]  # fmt: skip
            if tadsr_main(argv) != 0:
                raise SystemExit("the command failed")

        t_one, t_many = _best_times([lambda: command("one"), lambda: command("many")], 2)
        t_batch = (t_many - t_one) / (k - 1)
    return {"model": label, "lr_size": args.size, "net_codec_s": round(t_net, 4),
            "single_image_full_path_s": round(t_full, 4),
            "single_image_ratio": round(t_full / t_net, 3),
            "batch_per_image_s": round(t_batch, 4), "batch_ratio": round(t_batch / t_net, 3),
            "target": "<= 1.1"}  # fmt: skip


def bench_tiled(args) -> dict:
    """Cost of automatic tiling (context halo + overlaps) on an image big enough to be tiled."""
    from tadsr.inference.upscaler import Upscaler

    pipe, label = load(args.model, "student", args.device)
    up = Upscaler(pipe, seed=0)
    n = args.tiled_size
    lq = torch.from_numpy(_photo(n).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    noise = torch.randn(pipe.noise_shape(n, n), generator=torch.Generator())
    t_net, t_tiled = _best_times([lambda: pipe(lq, noise=noise), lambda: up.upscale_tensor(lq)],
                                 max(1, args.repeats // 2))  # fmt: skip
    return {"model": label, "lr_size": n, "untiled_net_codec_s": round(t_net, 3),
            "auto_tiled_s": round(t_tiled, 3), "ratio": round(t_tiled / t_net, 3)}  # fmt: skip


def bench_teacher(args) -> dict:
    student, s_label = load(args.model, "student", args.device)
    teacher, t_label = load(args.teacher, "teacher", args.device)
    lq = (
        torch.from_numpy(_photo(args.teacher_size).copy()).permute(2, 0, 1)[None].float() / 127.5
        - 1
    )
    g = torch.Generator().manual_seed(0)
    # interleaved one to one; the fastest run of each is kept
    t_s, t_t = _best_times(
        [lambda: student(lq, generator=g), lambda: teacher(lq, generator=g, steps=15)],
        max(1, args.repeats // 2),
    )
    return {"student": s_label, "teacher": t_label, "lr_size": args.teacher_size,
            "student_s": round(t_s, 4), "teacher_15_steps_s": round(t_t, 4),
            "speedup": round(t_t / t_s, 2), "target": ">= 10"}  # fmt: skip


def bench_memory(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "big.png", Path(tmp) / "big_x4.png"
        Image.fromarray(_photo(args.big)).save(src)
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(src),
            str(dst),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
        ]
        if args.model:
            cmd += ["--model", args.model]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"memory child failed:\n{res.stderr}")
        out = json.loads(res.stdout.strip().splitlines()[-1])
        out["output_size"] = Image.open(dst).size
    out.update(input_size=[args.big, args.big], target="peak RSS < 2048 MB")
    return out


def _peak_rss_mb() -> float:
    """This process's peak resident set. VmHWM where /proc exists: ru_maxrss is inherited
    from the parent across fork + exec on Linux, so it would report the parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(args) -> None:
    """Runs in a fresh process: load, upscale one file, report peak RSS."""
    from tadsr.inference.upscaler import Upscaler

    pipe, label = load(args.model, "student", args.device)
    rss_loaded = _peak_rss_mb()
    up = Upscaler(pipe, seed=0)
    t = time.perf_counter()
    up.upscale_file(args.child[0], args.child[1])
    secs = time.perf_counter() - t
    peak = _peak_rss_mb()
    print(
        json.dumps(
            {
                "model": label,
                "peak_rss_mb": round(peak, 1),
                "rss_after_load_mb": round(rss_loaded, 1),
                "seconds": round(secs, 1),
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=None, help="student (default: bundled)")
    p.add_argument("--teacher", default="tadsr-small-teacher", help="teacher name or path")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=128, help="LR size for the overhead test")
    p.add_argument("--teacher-size", type=int, default=128, help="LR size, student vs teacher")
    p.add_argument("--tiled-size", type=int, default=640, help="LR size, tiling cost (0: skip)")
    p.add_argument("--big", type=int, default=2048, help="LR size for the memory test")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=6, help="images in the batch timing")
    p.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: process CPU time (default; robust when the machine is shared)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: with --clock cpu, no spin-waiting "
        "threads inflate the CPU time)",
    )
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-teacher", action="store_true")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        torch.set_num_threads(args.threads)
        child(args)
        return
    CLOCK[0] = args.clock
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"{args.clock} time"
    )
    print("overhead:", json.dumps(bench_overhead(args)), flush=True)
    if args.tiled_size:
        print("tiling:", json.dumps(bench_tiled(args)), flush=True)
    if not args.skip_teacher:
        print("student vs teacher:", json.dumps(bench_teacher(args)), flush=True)
    if not args.skip_memory:
        print("peak memory:", json.dumps(bench_memory(args)), flush=True)


if __name__ == "__main__":
    main()
