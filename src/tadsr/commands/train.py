"""`tadsr train teacher|distill|export`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

if TYPE_CHECKING:
    from tadsr.train.config import DistillConfig, TeacherConfig


def _common(p: argparse.ArgumentParser, default_preset: str) -> None:
    p.add_argument(
        "--config",
        default=default_preset,
        help=f"a preset name (sr, small, tiny{', face' if 'distill' in p.prog else ''})"
        f" or a YAML file (default: {default_preset})",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set run.iterations=100 (repeatable)",
    )
    p.add_argument("--out", required=True, help="run folder (log, config, checkpoints, samples)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue exactly from RUN_DIR/checkpoints/last.pt if it exists",
    )
    p.add_argument(
        "--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default: auto)"
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


@contextlib.contextmanager
def _clear_errors(what: str):
    """Bad data, files or settings end the run with one line (exit 1), not a traceback."""
    from tadsr.checkpoints import CheckpointError

    try:
        yield
    except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder must be
        print(f"tadsr train {what}: error: {exc.filename}: a file is in the way of a folder",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(1) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"tadsr train {what}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ValueError, CheckpointError, FloatingPointError) as exc:
        print(f"tadsr train {what}: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the teacher or distil the one-step student")
    sub = p.add_subparsers(dest="train_command", metavar="WHAT", required=True)
    t = sub.add_parser("teacher", help="train the ResShift teacher (runs under torchrun too)")
    _common(t, "small")
    t.set_defaults(func=cmd_teacher)
    s = sub.add_parser("distill", help="distil a TAD-SR one-step student from a teacher")
    s.add_argument("--teacher", help="teacher weights: our .safetensors or an official .pth")
    s.add_argument("--autoencoder", help="official VQ .pth when the teacher is an official .pth")
    s.add_argument(
        "--losses",
        help="comma list of losses to use out of reg,hfsd,gan "
        "(ablation; others get weight 0), e.g. --losses reg",
    )
    _common(s, "small")
    s.set_defaults(func=cmd_distill)
    e = sub.add_parser("export", help="export the EMA weights of a training checkpoint")
    e.add_argument("checkpoint", help="RUN_DIR/checkpoints/last.pt")
    e.add_argument("-o", "--output", required=True, help="output .safetensors")
    e.set_defaults(func=cmd_export)


@overload
def _resolve(kind: Literal["teacher"], args) -> TeacherConfig: ...
@overload
def _resolve(kind: Literal["distill"], args) -> DistillConfig: ...
def _resolve(kind: Literal["teacher", "distill"], args) -> TeacherConfig | DistillConfig:
    from tadsr.commands import UsageError
    from tadsr.train.config import resolve

    sets = list(args.sets)
    if kind == "distill":
        if args.teacher:
            sets.append(f"teacher={args.teacher}")
        if args.autoencoder:
            sets.append(f"autoencoder={args.autoencoder}")
        if args.losses:
            chosen = {x.strip() for x in args.losses.split(",") if x.strip()}
            bad = chosen - {"reg", "hfsd", "gan"}
            if bad:
                raise UsageError(f"--losses: unknown {sorted(bad)}; use reg, hfsd, gan")
            sets += [f"w_{name}=0" for name in ("reg", "hfsd", "gan") if name not in chosen]
    try:
        from tadsr.utils.device import pick_device

        pick_device(args.device)
        return resolve(kind, args.config, sets)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_teacher(args) -> int:
    from tadsr.train.config import dump
    from tadsr.train.teacher import train_teacher

    cfg = _resolve("teacher", args)
    if args.print_config:
        print(dump(cfg))
        return 0
    with _clear_errors("teacher"):
        out = train_teacher(cfg, args.out, resume=args.resume, device=args.device)
    print(f"teacher weights: {out}")
    return 0


def cmd_distill(args) -> int:
    from tadsr.commands import UsageError
    from tadsr.train.config import dump
    from tadsr.train.distill import distill

    cfg = _resolve("distill", args)
    if args.print_config:
        print(dump(cfg))
        return 0
    if not cfg.teacher:
        raise UsageError("--teacher PATH is required")
    if not Path(cfg.teacher).is_file():
        from tadsr.models import registry

        if cfg.teacher not in registry():
            print(f"tadsr train distill: {cfg.teacher}: no such teacher file", file=sys.stderr)
            return 1
    with _clear_errors("distill"):
        out = distill(cfg, args.out, resume=args.resume, device=args.device)
    print(f"student weights: {out}")
    return 0


def cmd_export(args) -> int:
    from tadsr.checkpoints import CheckpointError
    from tadsr.checkpoints.loading import from_training_state
    from tadsr.checkpoints.official import read_training_state
    from tadsr.train.config import DistillConfig, TeacherConfig, from_dict

    path, out = Path(args.checkpoint), Path(args.output)
    if not path.is_file():
        print(f"tadsr train export: {path}: no such file", file=sys.stderr)
        return 1
    try:
        payload = read_training_state(path)
        model = from_training_state(path, payload)  # the EMA weights, codec and schedule
    except CheckpointError as exc:
        print(f"tadsr train export: error: {exc}", file=sys.stderr)
        return 1
    step = int(payload["step"])
    if model.kind == "student":  # a distillation run
        from tadsr.train.distill import export_student

        export_student(model.net, model, from_dict(DistillConfig, model.config), out, step)
    else:
        from tadsr.train.teacher import export_teacher

        cfg = from_dict(TeacherConfig, model.config)
        export_teacher(model.net, model.codec, cfg, out, step)
    print(f"wrote {args.output}")
    return 0
