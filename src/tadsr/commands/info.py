"""`tadsr info PATH` and `tadsr export-official UNET.pth -o OUT.safetensors`.

Importing this module (as `tadsr --help` does) imports no torch; `tadsr info` on a bundled
model reads only the file's header (the bundled files' tensors are checked against their
architecture by the test suite), other files are also checked against the network their
metadata describes, which needs torch."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from tadsr.checkpoints.header import CheckpointError, tensor_shapes
from tadsr.checkpoints.header import sniff as _sniff
from tadsr.commands.types import int_range

__all__ = ["register", "describe_file", "export_official", "cmd_info", "cmd_export_official"]


def _layout(kind: str, config: Any) -> str:
    """Human name of an architecture, e.g. 'VQ autoencoder f4' (config: object or dict)."""
    d = config if isinstance(config, dict) else config.to_dict()
    if kind == "vq":
        return f"VQ autoencoder f{2 ** (len(d['ch_mult']) - 1)}"
    face = d.get("lq_size") not in (None, d.get("image_size"))
    return f"ResShift/SinSR/TAD-SR Swin-UNet ({'face' if face else 'SR'} layout)"


def _meta_module(kind: str, config: Any):
    """The architecture built on the meta device (shapes, no memory)."""
    import torch

    from tadsr.checkpoints.official import build_module

    with torch.device("meta"):
        return build_module(kind, config)  # type: ignore[arg-type]


def _expected_shapes(meta: dict[str, Any], codec_embedded: bool) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the networks that our file's metadata describes (torch)."""
    from tadsr.nets.autoencoder import VQConfig
    from tadsr.nets.unet import UNetConfig

    expected: dict[str, tuple[int, ...]] = {}
    if "unet" in meta:
        net = _meta_module("unet", UNetConfig.from_dict(meta["unet"]))
        expected.update({f"unet.{k}": tuple(v.shape) for k, v in net.named_parameters()})
    codec = meta.get("codec") or {}
    if codec.get("kind") == "vq" and codec_embedded:
        vq = _meta_module("vq", VQConfig.from_dict(codec["config"]))
        expected.update({f"codec.{k}": tuple(v.shape) for k, v in vq.named_parameters()})
    return expected


def _is_bundled(path: Path) -> bool:
    from tadsr.models import HERE, registry

    files = {(HERE / e["file"]).resolve() for e in registry().values()}
    return path.resolve() in files


def _check_tensors(
    path: Path, found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]
) -> None:
    """The file's tensor names and shapes (header only) against the architecture its metadata
    describes; CheckpointError saying what does not fit."""
    foreign = sorted(set(found) - set(expected))
    missing = sorted(set(expected) - set(found))
    shapes = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
    problems = []
    if foreign:
        problems.append(f"{len(foreign)} tensor(s) it does not use ({', '.join(foreign[:3])})")
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:3])})")
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} of the wrong shape ({k}: {found[k]}, not {expected[k]})")
    if problems:
        raise CheckpointError(
            f"{path}: not a model this package can run: its metadata describes a network, but "
            "it has " + "; ".join(problems)
        )


_ST_DTYPES = {
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "I32": "int32",
    "U8": "uint8",
    "BOOL": "bool",
}


def _dtypes(names: list[str]) -> str:
    return ", ".join(sorted({_ST_DTYPES.get(n, n) for n in names})) or "none"


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _describe_ours(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    from tadsr.checkpoints.header import tensor_dtypes

    dtypes = tensor_dtypes(path)
    shapes = tensor_shapes(path)
    kinds: list[str] = []
    config: dict[str, Any] = {}
    if "unet" in meta:
        kinds.append(_layout("unet", meta["unet"]))
        config["unet"] = meta["unet"]
    codec = meta.get("codec")
    embedded = any(k.startswith("codec.") for k in dtypes)
    if codec is not None:
        config["codec"] = codec
        if codec.get("kind") == "vq":
            vq = _layout("vq", codec["config"])
            kinds.append(f"{vq} ({'embedded' if embedded else 'not embedded'})")
        else:
            kinds.append(f"{codec.get('kind')} codec (f{codec.get('factor')}, no weights)")
    for key in ("schedule", "scale", "steps", "provenance"):
        if key in meta:
            config[key] = meta[key]
    if not _is_bundled(path):
        expected = _expected_shapes(meta, embedded)
        if expected:
            _check_tensors(path, shapes, expected)
    # with the tensors matching the architecture, its parameter count is theirs
    params = sum(
        math.prod(shape) for k, shape in shapes.items() if k.startswith(("unet.", "codec."))
    )
    return {
        "file": str(path),
        "format": f"tadsr safetensors (format {meta['format_version']})",
        "kind": f"{meta['kind']}: " + " + ".join(kinds),
        "config": config,
        "parameters": params,
        "tensors": len(dtypes),
        "dtype": _dtypes(list(dtypes.values())),
    }


def describe_file(path: str | Path) -> dict[str, Any]:
    """Everything `tadsr info` prints, as a dict. Raises CheckpointError for a bad file."""
    from tadsr.checkpoints.header import read_metadata
    from tadsr.utils.files import file_problem

    path = Path(path)
    problem = file_problem(path)  # stat only: a FIFO or a device is never opened
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    if path.is_file():
        with path.open("rb") as f:
            head = f.read(64)
        if _sniff(head) == "safetensors":
            try:
                meta = read_metadata(path)
            except CheckpointError as exc:
                if "without tadsr metadata" not in str(exc):
                    raise
            else:
                return _describe_ours(path, meta)
    from tadsr.checkpoints.official import load_official

    loaded = load_official(path, materialize=False)
    fmt = "official safetensors" if path.suffix == ".safetensors" else "official PyTorch checkpoint"
    return {
        "file": str(path),
        "format": f"{fmt} ({path.suffix or 'no suffix'})",
        "kind": _layout(loaded.kind, loaded.config),
        "config": loaded.config.to_dict(),
        "parameters": sum(p.numel() for p in loaded.module.parameters()),
        "tensors": loaded.report.num_tensors,
        "dtype": _dtypes(loaded.report.stored_dtypes),
        "report": loaded.report.lines()[1:],
    }


def cmd_info(args: argparse.Namespace) -> int:
    try:
        info = describe_file(args.path)
    except CheckpointError as exc:
        print(f"tadsr info: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    n = info["parameters"]
    print(f"file:       {info['file']}")
    print(f"format:     {info['format']}")
    print(f"kind:       {info['kind']}")
    print(f"parameters: {n} ({_millions(n)})")
    print(f"tensors:    {info['tensors']}")
    print(f"dtype:      {info['dtype']}")
    print("config:")
    for key, value in info["config"].items():
        print(f"  {key}: {json.dumps(value)}")
    for line in info.get("report", []):
        print(f"note:     {line.strip()}")
    return 0


def export_official(
    unet_path: str | Path,
    output: str | Path,
    *,
    autoencoder: str | Path | None = None,
    kind: str = "sr_teacher",
    steps: int | None = None,
    schedule: str | None = None,
    scale: int | None = None,
    dtype: Any = "float16",
) -> tuple[Path, dict[str, Any], list[str]]:
    """Convert official .pth files to our safetensors: (path, summary, report lines).

    Without `autoencoder` the codec is recorded by config only (the official VQ preset that
    the UNet's layout pairs with), so the file says what to load it with. dtype: the UNet's
    stored dtype, "float16" (default), a torch dtype, or None / "float32" to keep float32.
    """
    import torch

    from tadsr.checkpoints.io import save_model
    from tadsr.checkpoints.official import load_official
    from tadsr.diffusion.schedule import SCHEDULE_PRESETS
    from tadsr.nets.autoencoder import VQ_PRESETS
    from tadsr.nets.codec import VQCodec

    if isinstance(dtype, str):
        dtype = None if dtype == "float32" else getattr(torch, dtype)
    unet = load_official(unet_path, expect="unet")
    vq = load_official(autoencoder, expect="vq") if autoencoder else None
    face = "face" in _layout("unet", unet.config)
    codec: Any = (
        VQCodec(vq.autoencoder)
        if vq is not None
        else {"kind": "vq", "config": VQ_PRESETS["vq_f8_face" if face else "vq_f4"].to_dict()}
    )
    preset = schedule or ("face" if face else "sr")
    sched = SCHEDULE_PRESETS[preset]
    if steps is None:
        steps = 1 if kind == "sr_student" else sched.steps
    if scale is None:
        scale = 1 if face else 4
    provenance = {
        "converted_by": "tadsr export-official",
        "unet_source": Path(unet_path).name,
        "autoencoder_source": Path(autoencoder).name if autoencoder else None,
        "schedule_preset": preset,
    }
    out = save_model(
        output,
        unet=unet.module,
        unet_config=unet.config,
        codec=codec,
        schedule=sched,
        kind=kind,
        steps=steps,
        scale=scale,
        provenance=provenance,
        dtype=dtype,
    )
    summary = {"kind": kind, "steps": steps, "scale": scale, "schedule": preset}
    lines = unet.report.lines()[1:] + (vq.report.lines()[1:] if vq is not None else [])
    return out, summary, lines


def cmd_export_official(args: argparse.Namespace) -> int:

    try:
        out, summary, lines = export_official(
            args.unet,
            args.output,
            autoencoder=args.autoencoder,
            kind=args.kind,
            steps=args.steps,
            schedule=args.schedule,
            scale=args.scale,
            dtype=args.dtype,
        )
    except CheckpointError as exc:
        print(f"tadsr export-official: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tadsr export-official: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {out} ({summary['kind']}, {summary['steps']} step(s), x{summary['scale']}, "
        f"schedule {summary['schedule']}, UNet in {args.dtype})"
    )
    for line in lines:
        print(f"note: {line.strip()}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "info", help="describe a checkpoint (official .pth or tadsr .safetensors)"
    )
    p.add_argument("path", help="checkpoint file")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=cmd_info)

    e = subparsers.add_parser(
        "export-official",
        help="convert official ResShift/SinSR/TAD-SR .pth files to tadsr safetensors",
    )
    e.add_argument("unet", help="official UNet checkpoint (.pth)")
    e.add_argument("--autoencoder", help="official VQ autoencoder (.pth) to embed as the codec")
    e.add_argument("-o", "--output", required=True, help="output .safetensors file")
    e.add_argument("--kind", choices=("sr_student", "sr_teacher"), default="sr_teacher")
    e.add_argument(
        "--steps", type=int_range(1), default=None, help="sampling steps (default 1 / T)"
    )
    e.add_argument("--schedule", choices=("sr", "face", "face_sinsr"), default=None)
    e.add_argument("--scale", type=int, default=None, help="upscaling factor (default 4; face 1)")
    e.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    e.set_defaults(func=cmd_export_official)

    m = subparsers.add_parser("models", help="list the bundled models and their measured numbers")
    m.add_argument("--json", action="store_true", help="print the registry as JSON")
    m.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    """`tadsr models`: the bundled models with the figures measured by benchmarks/model_card.py."""
    import json

    from tadsr.models import DEFAULT_MODEL, HERE, registry

    entries = registry()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("no bundled models in this installation")
        return 1
    for name, e in entries.items():
        path = HERE / e["file"]
        size = f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "MISSING"
        star = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{star}: {e.get('description', '')}")
        print(
            f"  file {e['file']} ({size}), {e.get('kind')}, {e.get('steps')} step(s), "
            f"{e.get('parameters', '?')} parameters"
        )
        metrics = e.get("metrics") or {}
        if metrics:
            print(f"  measured on {e.get('measured_on', 'the validation pairs')}:")
            groups = (
                metrics if all(isinstance(v, dict) for v in metrics.values()) else {"": metrics}
            )
            for group, values in groups.items():
                shown = ", ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in values.items()
                )
                print(f"    {group + ': ' if group else ''}{shown}")
    return 0
