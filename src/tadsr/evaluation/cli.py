"""Sub-commands of `tadsr` for evaluation: `tadsr eval` (and, later, `tadsr bench`)."""

from __future__ import annotations

import argparse
import math
import sys


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
        help="latency, speed-up and peak memory: one-step student vs multi-step teacher",
        description="Runs the student (1 network evaluation) and the teacher (its full "
        "schedule, 15 steps) on the same random low-resolution input, each in its own "
        "process, and prints latency (median of --repeats after a warm-up), the ratio, "
        "seconds per output megapixel and peak memory.",
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
    p.add_argument("--teacher-steps", type=int, help="teacher steps (default: its schedule)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--repeats", type=int, default=3, help="timed runs per model (default 3)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="also write JSON")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from tadsr.cli import UsageError
    from tadsr.evaluation.bench import bench
    from tadsr.evaluation.runner import write_json_atomic

    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
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
    w, h = args.size
    print(f"input {w}x{h} -> output {4 * w}x{4 * h}, device {args.device}, {args.dtype}")
    print(f"{'model':<24} {'evals':>5} {'latency s':>10} {'s/out MP':>9} {'peak MB':>9}")
    failed = False
    for role in ("student", "teacher"):
        m = r[role]
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
    if args.json_path:
        write_json_atomic(args.json_path, r)
    return 1 if failed else 0


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
        "--crop-border", type=int, default=4, help="border cropped for PSNR/SSIM (default 4)"
    )
    p.add_argument("--device", default="auto", help="device for learned metrics (default auto)")
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
    from tadsr.cli import UsageError
    from tadsr.evaluation.metrics import available_metrics
    from tadsr.evaluation.runner import (
        EvalInputError,
        EvalUsageError,
        compute_metrics,
        write_json_atomic,
    )

    if args.list:
        for name, (ok, message) in available_metrics().items():
            print(f"{name:<8} {'yes' if ok else 'no ':<4} {message}")
        return 0
    if not args.sr:
        raise UsageError("--sr is required")
    if args.crop_border < 0:
        raise UsageError("--crop-border must be >= 0")
    metrics = [m for m in (args.metrics or "").split(",") if m.strip()] or None
    device = "cpu"
    if metrics and any(m.strip().lower() in _LEARNED for m in metrics):
        device = _pick_device(args.device)
    try:
        result = compute_metrics(args.sr, args.hr, metrics, args.crop_border, device)
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
    for name, why in result["unavailable"].items():
        more = f" (and {len(why) - 1} more)" if len(why) > 1 else ""
        print(f"tadsr eval: {name} n/a for {len(why)} image(s): {why[0]}{more}", file=sys.stderr)
    if args.json_path:
        try:
            write_json_atomic(args.json_path, result)
        except OSError as exc:
            print(f"tadsr eval: error: cannot write {args.json_path}: {exc}", file=sys.stderr)
            return 1
    return 0


_LEARNED = ("lpips", "dists", "clipiqa", "clip_iqa", "musiq", "maniqa")


def _pick_device(name: str) -> str:
    from tadsr.cli import UsageError
    from tadsr.utils.device import pick_device

    try:
        return str(pick_device(name))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
