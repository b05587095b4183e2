"""`tadsr serve`: a local web page for upscaling (needs the `web` extra)."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from tadsr.commands.types import float_range, int_range
from tadsr.inference.imageio import DEFAULT_MAX_PIXELS

PROG = "tadsr serve"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 100
DEFAULT_ABANDON_S = 1800.0

_DESCRIPTION = """\
Start a local web page for upscaling: drop images on it, pick the model (the one-step
student, or the teacher and its number of steps), the fidelity <-> realism dial (as
tadsr upscale --fidelity), the tile size, the colour fix and the seed, watch the queue
position and progress, compare the result with bicubic, download the PNGs. The same
Upscaler as `tadsr upscale` does the work, so a result equals what `tadsr upscale` writes
with the same options, in PNG, JPEG or WebP, at x4 or a smaller size. Jobs run one at a
time and outlive the page: a reload reconnects to them, Cancel stops one, and a job no page
has asked about for --abandon-after seconds is cancelled.
Nothing is fetched from the internet.
"""

_EPILOG = f"""\
safety: binds to 127.0.0.1 and answers only to localhost by default. Another --host (e.g.
0.0.0.0) makes the page reachable from the network and prints a warning; add --token so that
only people given the address with its ?token=... can use it. Uploads are kept in a
temporary folder, removed when the server stops; inputs above --max-upload-mb (default
{DEFAULT_MAX_UPLOAD_MB}) or --max-pixels (default {DEFAULT_MAX_PIXELS:,}, as tadsr upscale)
are refused.

needs: pip install "tadsr[web]" (Starlette and uvicorn).
"""


def register(subparsers) -> None:
    """Add the `serve` sub-command."""
    p = subparsers.add_parser(
        "serve",
        help="local web page for upscaling (needs the web extra)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int_range(0, 65535),
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0: any free)",
    )
    p.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        default=None,
        help="the page's default model: a bundled name or our .safetensors "
        "(default: the bundled student; the bundled models are offered too)",
    )
    p.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,mps}",
        help="device (default auto: cuda, then mps, then cpu)",
    )
    p.add_argument(
        "--dtype", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
        help="precision (auto: as tadsr upscale)"
    )
    p.add_argument(
        "--max-upload-mb",
        type=float_range(0, lo_open=True),
        default=DEFAULT_MAX_UPLOAD_MB,
        metavar="MB",
        help=f"largest accepted upload in MiB (default {DEFAULT_MAX_UPLOAD_MB})",
    )
    p.add_argument(
        "--max-pixels",
        type=int_range(1),
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"refuse images with more pixels (default {DEFAULT_MAX_PIXELS:,})",
    )
    p.add_argument("--token", default=None, help="shared secret required by every request")
    p.add_argument(
        "--abandon-after",
        type=float_range(0, lo_open=True),
        default=DEFAULT_ABANDON_S,
        metavar="SECONDS",
        help="cancel a job that no page has asked about for this long (default "
        f"{DEFAULT_ABANDON_S:g}: a reload or a phone tab in the background keeps its jobs; "
        "Cancel on the page stops one at once)",
    )
    p.set_defaults(func=run)


def _models(default: str | None) -> tuple[dict[str, str | None], dict[str, str], int]:
    """(name -> NAME_OR_PATH with the default first, name -> kind, teacher steps)."""
    from pathlib import Path

    from tadsr.models import DEFAULT_MODEL, registry

    entries = registry()
    models: dict[str, str | None] = {}
    if default is not None and default not in entries:
        models[Path(default).name] = default  # a file given by the person starting the server
    else:
        models[default or DEFAULT_MODEL] = default or DEFAULT_MODEL
    for name in entries:
        models.setdefault(name, name)
    kinds = {n: e.get("kind", "student") for n, e in entries.items()}
    steps = max((e.get("steps", 1) for e in entries.values() if e.get("kind") == "teacher"),
                default=15)  # fmt: skip
    return models, kinds, int(steps)


def _about(models: dict[str, str | None]) -> dict[str, dict]:
    """name -> {description, s_per_mp} of the bundled models (speed: the registry's figure
    on mildly degraded photos, seconds per x4 output megapixel where it was measured)."""
    from tadsr.models import registry

    entries, out = registry(), {}
    for name, ref in models.items():
        entry = entries.get(ref or "", {})
        speed = entry.get("metrics", {}).get("real", {}).get("s_per_mp")
        out[name] = {"description": entry.get("description"), "s_per_mp": speed,
                     "steps": entry.get("steps")}  # fmt: skip
    return out


def _dials(models: dict[str, str | None]) -> dict[str, float | str]:
    """name -> default F of the models with a faithful endpoint (the page's slider)."""
    from tadsr.models.fidelity import default_fidelity, endpoint_for

    return {n: default_fidelity(m) or 0.0 for n, m in models.items() if endpoint_for(m)}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from tadsr.commands import UsageError
    from tadsr.utils.device import DeviceError, pick_device, pick_dtype

    if args.token is not None and not args.token.strip():
        raise UsageError("--token must not be empty")
    try:
        device = pick_device(args.device)
        dtype = pick_dtype(args.dtype, device)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None
    try:
        import uvicorn

        from tadsr.web.app import ServeConfig, create_app
    except ImportError as exc:
        print(
            f"{PROG}: error: the web extra is not installed ({exc.name} is missing): "
            'pip install "tadsr[web]"',
            file=sys.stderr,
        )
        return 1
    if args.model is not None:  # a wrong name or path is said now, not at the first job
        from tadsr.checkpoints import CheckpointError
        from tadsr.models import resolve_model

        try:
            resolve_model(args.model)
        except CheckpointError as exc:
            print(f"{PROG}: error: cannot load model {exc}", file=sys.stderr)
            return 1
    local = _is_loopback(args.host)
    models, kinds, teacher_steps = _models(args.model)
    # the default model is loaded before the address is printed: a server that cannot run
    # it says so and stops, instead of looking alive while every job waits
    default = next(iter(models))
    try:
        from tadsr.pipeline import SRPipeline

        loaded = {default: SRPipeline.from_pretrained(models[default], device=device,
                                                      dtype=dtype)}  # fmt: skip
    except Exception as exc:  # CheckpointError, a wrong layout, ...: one line
        from tadsr.utils.files import one_line

        msg = one_line(exc)
        msg = msg if msg.startswith(str(models[default])) else f"{default}: {msg}"
        print(f"{PROG}: error: cannot load model {msg}", file=sys.stderr)
        return 1
    cfg = ServeConfig(
        models=models,
        kinds=kinds,
        about=_about(models),
        fidelity=_dials(models),
        teacher_steps=teacher_steps,
        device=args.device,
        dtype=args.dtype,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels,
        token=args.token,
        local_only=local,
        loaded=loaded,
        abandon_after_s=args.abandon_after,
    )
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    port = sock.getsockname()[1]
    if not local:
        print(
            f"{PROG}: warning: --host {args.host} makes this page reachable from other "
            "machines: anyone who can reach it can upload images and use this computer"
            + ("" if args.token else " (add --token SECRET to require a shared secret)"),
            file=sys.stderr,
        )
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    from urllib.parse import quote

    query = f"/?token={quote(args.token, safe='')}" if args.token else "/"
    print(f"{PROG}: http://{shown}:{port}{query}  (Ctrl-C to stop)", flush=True)
    config = uvicorn.Config(
        create_app(cfg), log_level="warning", access_log=False, timeout_graceful_shutdown=5
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly first, then re-raised Ctrl-C
        print(f"{PROG}: stopped", file=sys.stderr)
        return 130  # as every other command stopped by Ctrl-C
    print(f"{PROG}: stopped", file=sys.stderr)
    return 0
