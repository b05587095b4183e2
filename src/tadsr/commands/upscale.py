"""`tadsr upscale`: x4 super-resolution of image files and folders.

Exit status: 0 every input succeeded (or was skipped because its output exists), 1 any input
failed (one stderr line each, the rest still processed) or the model / output folder could
not be used, 2 a usage error. Under `torchrun --nproc_per_node=N` each process takes the
inputs i with i % WORLD_SIZE == RANK of the sorted list and LOCAL_RANK picks its GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tadsr.commands.types import int_range
from tadsr.inference.core import UpscaleOptions, output_tag
from tadsr.inference.imageio import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_QUALITY,
    OUTPUT_FORMATS,
    is_complete_image,
    is_tadsr_output,
)
from tadsr.utils.files import (
    IMAGE_SUFFIXES,
    file_problem,
    list_images,
    one_line,
    remove_stale_temporaries,
)

if TYPE_CHECKING:
    import torch

PROG = "tadsr upscale"

_DESCRIPTION = """\
Upscale images x4 with the one-step TAD-SR student (or a multi-step teacher).

Each INPUT is an image file or a folder (its images, not its sub-folders). The result of
INPUT is written as OUTDIR/<input stem>.png (16-bit when the input is 16-bit; gray stays
gray; alpha is kept, resized bicubically), or .jpg / .webp with --format (8-bit; a JPEG
composites alpha on white, and a warning names each file that loses depth or alpha).
Names are made unique without ever replacing an input: when OUTDIR/<stem>.png would be one
of the inputs (OUTDIR is the input folder and the input is a PNG) the output is
<stem>_x4.png (x<outscale>, w<width>), and when two inputs share a stem the later ones
(in the order given, folders sorted) get <stem>_2.png, <stem>_3.png, ... (a note says so).
An existing output is skipped unless --overwrite, so running the command again resumes a
batch. Outputs are written to a temporary file, then renamed.
"""

_EPILOG = f"""\
images: PNG, JPEG, WebP, BMP, TIFF, PPM; EXIF orientation is applied. Inputs larger than
--max-pixels (default {DEFAULT_MAX_PIXELS:,} pixels = 64 MP) are refused as possible
decompression bombs.

tiles: sizes are in low-resolution pixels. The network sees each tile plus --tile-pad pixels
of context on each side; neighbouring outputs are blended with raised-cosine weights over
the overlap, so no seam is left. The prior noise is drawn for the whole image (--seed), in
fixed blocks, so every tile sees the same noise whatever the tiling, the order or the number
of processes. Each tile still sees only its own context, which is smaller than the network's
receptive field: a tiled result differs slightly from an untiled one (bundled student,
320x320 input, --tile 64: mean 0.6, at most 29 levels of 255, no visible seam). Use --tile 0
for the untiled result when the image fits in memory.

many GPUs: torchrun --nproc_per_node=N -m tadsr.cli upscale IN -o OUT  (or the `tadsr`
script under torchrun --no-python); RANK / WORLD_SIZE share the inputs, LOCAL_RANK picks the
cuda device.

exit status: 0 all inputs done or skipped, 1 an input failed (one line each on stderr) or
the model / output folder cannot be used, 2 usage error.
"""


def register(subparsers) -> None:
    """Add the `upscale` sub-command."""
    p = subparsers.add_parser(
        "upscale",
        help="upscale images x4 (files and folders)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if missing)"
    )
    p.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        default=None,
        help="bundled model name (default: the one-step student; "
        "'tadsr-small-teacher' for the teacher), our .safetensors, or an "
        "official .pth (with --autoencoder)",
    )
    p.add_argument(
        "--autoencoder",
        metavar="PATH",
        default=None,
        help="official VQ autoencoder .pth for an official UNet .pth",
    )
    add_upscale_options(p)
    p.add_argument(
        "--format",
        choices=tuple(OUTPUT_FORMATS),
        default="png",
        help="output format (default png; jpg and webp are 8-bit, jpg has no transparency: "
        "it is composited on white, with a warning naming the file)",
    )
    p.add_argument(
        "--quality",
        type=int_range(1, 100),
        default=None,
        metavar="Q",
        help=f"jpg / webp quality, 1 to 100 (default {DEFAULT_QUALITY})",
    )
    _add_fidelity_arguments(p, FIDELITY_HELP + " " + FIDELITY_AUTO_HELP)
    p.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,mps}",
        help="device (default auto: cuda, then mps, then cpu; cuda:N allowed)",
    )
    p.add_argument(
        "--dtype",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="compute precision (default auto: bf16 on a CPU with native bf16, AVX512-BF16 "
        "or AMX, else fp32)",
    )
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="torch (default), or onnxruntime (pip install 'tadsr[onnx]'; the one-step "
        "student on the CPU, starts without importing torch; --model may be an .onnx file "
        "from `tadsr export`, other models are exported once into a cache). Both backends "
        "draw the noise alike, so a --seed gives the same picture as --backend torch (within "
        "one level of 255, at the same --fidelity and --dtype fp32)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (never an input); default: skip them",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars and no summary line"
    )
    p.set_defaults(func=run)
    _register_export(subparsers)


def add_upscale_options(parser: argparse.ArgumentParser) -> None:
    """One flag per `UpscaleOptions` field: --name-with-dashes, its type, default, choices
    and help (a field whose metadata says flag=None is API-only)."""
    for f in fields(UpscaleOptions):
        meta = dict(f.metadata)
        if "flag" in meta and meta.pop("flag") is None:
            continue
        meta.setdefault("type", int if "int" in str(f.type) else str)
        if "choices" in meta:
            meta.pop("type")
        default = f.default if f.default is not MISSING else None
        parser.add_argument(f"--{f.name.replace('_', '-')}", default=default, **meta)


def upscale_options(args: argparse.Namespace, **extra: Any) -> UpscaleOptions:
    """The options of parsed arguments (`extra`: the API-only ones)."""
    names = [f.name for f in fields(UpscaleOptions) if f.metadata.get("flag", True) is not None]
    return UpscaleOptions(**{n: getattr(args, n) for n in names}, **extra)


FIDELITY_HELP = (
    "fidelity <-> realism dial, 0 (most realistic: the one-step student) to 1 (most "
    "faithful: its endpoint, for tadsr-small the bundled tadsr-small-faithful). The two "
    "networks' weights are blended once at load, w = (1-F) w_student + F w_endpoint, and "
    "run in one step: no extra time. Default: the bundled model's default_fidelity (auto "
    "for tadsr-small; 0, the plain student, for --backend onnxruntime and tadsr export)."
)
FIDELITY_AUTO_HELP = (
    "'auto' picks F per image from its degradation: F = max(0.2, (noise - 2) / 4, (blocks - 1.08)"
    " / 0.22) clipped to [0, 1] in steps of 0.05, noise = Immerkaer's estimate on the luma "
    "(8-bit levels), blocks = JPEG 8-pixel grid step / inner step; a noisier or blockier "
    "input gets a higher F (the faithful end does not turn noise into texture)."
)


def _add_fidelity_arguments(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--fidelity", metavar="F", default=None, help=help)
    p.add_argument(
        "--fidelity-endpoint",
        metavar="FILE",
        default=None,
        help="the faithful endpoint to blend with (a bundled name or our .safetensors of the "
        "same architecture, codec, schedule and scale; default: the registry's, for a "
        "bundled model)",
    )


def fidelity_usage(args: argparse.Namespace, no_auto: str | None = None):
    """The (F or "auto", endpoint) of --fidelity / --fidelity-endpoint for args.model, or
    (None, None); UsageError for a bad value, a multi-step run, no endpoint known, or
    "auto" where `no_auto` says why it cannot be."""
    from tadsr.commands import UsageError
    from tadsr.models.fidelity import fidelity_plan

    given = args.fidelity is not None or args.fidelity_endpoint is not None
    if given and str(args.model or "").lower().endswith(".onnx"):
        raise UsageError("--fidelity: an .onnx file has its blend inside (tadsr export "
                         "--fidelity F makes one)")  # fmt: skip
    try:
        f, endpoint = fidelity_plan(args.model, args.fidelity, args.fidelity_endpoint,
                                    fixed=no_auto is not None)  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if f is None:
        return None, None
    if getattr(args, "steps", None) not in (None, 1):
        raise UsageError(f"--fidelity blends into a one-step network; --steps {args.steps} is "
                         "for a multi-step teacher run without it")  # fmt: skip
    if f == "auto" and no_auto:
        raise UsageError(f"--fidelity auto picks F per image, {no_auto}")
    return f, endpoint


def _register_export(subparsers) -> None:
    e = subparsers.add_parser(
        "export",
        help="export the one-step student as one ONNX graph (LR image + noise -> SR image)",
        description="Export a one-step student with the pixel-unshuffle codec as one ONNX "
        "graph. Inputs: lr float32 (1, 3, H, W) RGB in [0, 1]; noise float32 (1, 48, H, W) "
        "standard normal (choose the seed; tile with one noise field, as `tadsr upscale` "
        "does). Output: sr float32 (1, 3, 4H, 4W) RGB in [0, 1]. H and W are dynamic. "
        "Needs pip install 'tadsr[onnx]'.",
    )
    e.add_argument("model", metavar="MODEL", help="bundled model name or .safetensors file")
    e.add_argument("--format", choices=("onnx",), default="onnx", help="output format (onnx)")
    e.add_argument("-o", "--output", required=True, metavar="FILE", help="output .onnx file")
    _add_fidelity_arguments(e, FIDELITY_HELP + " The graph carries the blended weights "
                            "(a number; 'auto' needs tadsr upscale).")  # fmt: skip
    e.add_argument("--overwrite", action="store_true", help="replace an existing file that is "
                   "not an export of ours (never the input model)")  # fmt: skip
    e.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """`tadsr export`: exit 0 written, 1 the model cannot be exported or the file written."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        print("tadsr export: error: needs the onnx package (pip install 'tadsr[onnx]')",
              file=sys.stderr)  # fmt: skip
        return 1
    from tadsr.inference.onnx_export import export_onnx, output_problem

    f, endpoint = fidelity_usage(args, "which one exported graph cannot: give a number")
    blend = {"fidelity": f, "fidelity_endpoint": endpoint}
    try:
        problem = output_problem(args.model, args.output, overwrite=args.overwrite)
        if problem:  # said before anything is written, naming the output
            print(f"tadsr export: error: {problem}", file=sys.stderr)
            return 1
        out, meta = export_onnx(args.model, args.output, **blend)
    except OSError as exc:
        if Path(args.output).name not in str(exc.filename or ""):
            print(f"tadsr export: error: {args.model}: {one_line(exc)}", file=sys.stderr)
            return 1
        # writing the output (or its hidden temporary beside it): name the output
        print(f"tadsr export: error: cannot write {args.output}: {exc.strerror or exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    except Exception as exc:  # CheckpointError, ValueError (a teacher): one line
        msg = one_line(exc)
        msg = msg if args.model in msg else f"{args.model}: {msg}"
        print(f"tadsr export: error: {msg}", file=sys.stderr)
        return 1
    from tadsr.inference.onnx_export import OPSET, max_difference

    blended = f" fidelity {f:g} with {endpoint}," if f is not None else ""
    print(f"wrote {out} (ONNX opset {OPSET}, x{meta['tadsr.scale']},{blended} inputs lr + "
          f"noise, output sr; dynamic height and width)")  # fmt: skip
    if importlib.util.find_spec("onnxruntime") is not None:
        diff = max_difference(args.model, out, **blend)
        print(f"onnxruntime against torch, LR 64x96, 75x112 and 20x10: max |difference| "
              f"{diff:.2e} (pixels in [0, 1])")  # fmt: skip
    return 0


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Job:
    """One input file and the output it is written to."""

    src: Path
    dst: Path
    note: str | None = None


def collect_inputs(paths: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Expand folders (their image files, sorted, without this tool's own outputs) and drop
    duplicates; returns (files, errors)."""
    files: list[Path] = []
    errors: list[str] = []
    seen: set[str] = set()
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            try:
                found = [p for p in list_images(path) if not is_tadsr_output(p)]
            except OSError as exc:
                errors.append(f"{path}: cannot list folder: {exc.strerror or exc}")
                continue
            if not found:
                errors.append(
                    f"{path}: no images in folder "
                    f"({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})"
                )
        elif path.exists():
            found = [path]
        else:
            why = file_problem(path) or "no such file or folder"  # a loop is not "missing"
            errors.append(f"{path}: {'no such file or folder' if why == 'no such file' else why}")
            continue
        for p in found:
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                files.append(p)
    return files, errors


def plan_jobs(files: list[Path], outdir: Path, tag: str = "x4", ext: str = ".png") -> list[Job]:
    """Give each input a unique OUTDIR/<stem><ext> that is never one of the inputs."""
    inputs = {os.path.realpath(f) for f in files}
    taken: set[str] = set()
    jobs: list[Job] = []
    for src in files:
        stem = src.stem or src.name
        is_input = os.path.realpath(outdir / f"{stem}{ext}") in inputs
        base = f"{stem}_{tag}" if is_input else stem
        name, k = f"{base}{ext}", 2
        while name.lower() in taken or os.path.realpath(outdir / name) in inputs:
            name, k = f"{base}_{k}{ext}", k + 1
        note = None
        if is_input:
            note = f"{src}: writes {outdir / name} so as not to replace the input"
        elif name != f"{stem}{ext}":
            note = f"{src}: writes {outdir / name} (another input has the stem {stem!r})"
        taken.add(name.lower())
        jobs.append(Job(src, outdir / name, note))
    return jobs


def _check_format(args: argparse.Namespace) -> None:
    from tadsr.commands import UsageError

    if args.quality is not None and args.format == "png":
        raise UsageError("--quality is for --format jpg or webp (PNG is lossless)")


# --------------------------------------------------------------------------- running
def _say(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def _options(args: argparse.Namespace) -> UpscaleOptions:
    return upscale_options(args, progress=not args.quiet and sys.stderr.isatty())


def load_pipeline(model: str | None, autoencoder: str | None, device, dtype, **fidelity):
    """SRPipeline.from_pretrained (a seam: tests may swap in another pipeline factory);
    `fidelity`: fidelity= and fidelity_endpoint=."""
    from tadsr.pipeline import SRPipeline

    return SRPipeline.from_pretrained(
        model, autoencoder=autoencoder, device=device, dtype=dtype, **fidelity
    )


def run(args: argparse.Namespace) -> int:
    """The `tadsr upscale` command; returns the exit status."""
    from tadsr.commands import UsageError

    try:
        _options(args).validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_format(args)
    # from here on: the F to blend with (the registry's default when none given) or None
    no_auto = "which needs --backend torch" if args.backend != "torch" else None
    args.fidelity, args.fidelity_endpoint = fidelity_usage(args, no_auto)
    device: str | torch.device
    dtype: str | torch.dtype
    if args.backend == "onnxruntime":
        device, dtype, (rank, world) = "cpu", "fp32", _check_onnx_backend(args)
    else:
        from tadsr.utils.device import DeviceError, dist_rank_world, pick_device, pick_dtype

        try:
            device = pick_device(args.device)
            dtype = pick_dtype(args.dtype, device)
            rank, world = dist_rank_world()
        except DeviceError as exc:
            raise UsageError(str(exc)) from None

    files, errors = collect_inputs(args.inputs)
    for line in errors if rank == 0 else []:  # bad arguments: said once, by the first process
        print(f"{PROG}: {line}", file=sys.stderr)
    outdir = Path(args.output)
    tag, ext = output_tag(args.outscale, args.width), OUTPUT_FORMATS[args.format]
    jobs = plan_jobs(files, outdir, tag, ext)[rank::world]
    made_outdir = not outdir.exists()  # removed again if this run writes nothing into it
    if files or not errors:
        if not _prepare_outdir(outdir):
            return 1
    for job in jobs:
        if job.note and not args.quiet:
            print(f"{PROG}: note: {job.note}", file=sys.stderr)
    remove_stale_temporaries(outdir)  # `.NAME.<pid>.tmp` files of a killed run
    todo = [j for j in jobs if args.overwrite or not is_complete_image(j.dst)]
    skipped = len(jobs) - len(todo)
    failed = len(errors) if rank == 0 else 0
    written = 0
    if todo:
        written, f, model_ok = _process(args, todo, device, dtype)
        failed += f
        if made_outdir and not written:  # a failed run leaves no empty folder behind
            with contextlib.suppress(OSError):
                outdir.rmdir()
        if not model_ok:
            return 1
    if not args.quiet:
        where = f" (process {rank} of {world})" if world > 1 else ""
        print(
            f"{PROG}: {written} written, {skipped} skipped (output exists), {failed} failed{where}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _check_onnx_backend(args: argparse.Namespace) -> tuple[int, int]:
    """Usage errors of --backend onnxruntime; returns (rank, world) from the environment."""
    from tadsr.commands import UsageError
    from tadsr.inference.onnx_backend import onnxruntime_available

    if not onnxruntime_available():
        raise UsageError("--backend onnxruntime needs onnxruntime (pip install 'tadsr[onnx]')")
    if args.device not in ("auto", "cpu") or args.dtype not in ("auto", "fp32"):
        raise UsageError("--backend onnxruntime runs on the CPU in fp32 (--device, --dtype)")
    for flag, bad in (("--outscale", args.outscale is not None),
                      ("--width", args.width is not None),
                      ("--color-fix", args.color_fix != "none"),
                      ("--steps", args.steps not in (None, 1)),
                      ("--autoencoder", args.autoencoder is not None)):  # fmt: skip
        if bad:
            raise UsageError(f"{flag} needs --backend torch (onnxruntime runs the student only)")
    from tadsr.utils.env import DeviceError, dist_rank_world

    try:
        rank, world = dist_rank_world()
    except DeviceError as exc:
        raise UsageError(str(exc)) from None
    return rank, world


def _prepare_outdir(outdir: Path) -> bool:
    if outdir.exists() and not outdir.is_dir():
        print(f"{PROG}: error: output folder {outdir} is a file, not a folder", file=sys.stderr)
        return False
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as exc:
        print(
            f"{PROG}: error: output folder {outdir} is not writable: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return False
    return True


def _cannot_load(model: str | None, exc: BaseException) -> str:
    """'cannot load model NAME: reason', naming the model once (most reasons start with it)."""
    msg = one_line(exc)
    if model and msg.startswith(model):
        return f"cannot load model {msg}"
    return f"cannot load model {model or 'the bundled student'}: {msg}"


def _load_upscaler(args: argparse.Namespace, device, dtype):
    from tadsr.commands import UsageError

    if args.backend == "onnxruntime":
        from tadsr.inference.onnx_backend import OnnxUpscaler, cached_onnx

        try:
            path = cached_onnx(args.model, args.fidelity, args.fidelity_endpoint)
            return OnnxUpscaler(path, **vars(_options(args)))
        except Exception as exc:  # a bad file, a teacher, a failed export: one line
            print(f"{PROG}: error: {_cannot_load(args.model, exc)}", file=sys.stderr)
            return None
    from tadsr.inference.upscaler import Upscaler

    try:
        pipe = load_pipeline(
            args.model,
            args.autoencoder,
            device,
            dtype,
            fidelity=args.fidelity,
            fidelity_endpoint=args.fidelity_endpoint,
        )
    except Exception as exc:  # CheckpointError, OSError, ...: one line, never a traceback
        print(f"{PROG}: error: {_cannot_load(args.model, exc)}", file=sys.stderr)
        return None
    try:
        return Upscaler(pipe, **vars(_options(args)))
    except ValueError as exc:  # an option that does not suit this model (--steps)
        raise UsageError(str(exc)) from None


# Outputs up to this many pixels are encoded in a background thread while the next image
# runs (batch throughput ~ network time); larger ones are written before going on, so that
# two 8192 x 8192 canvases never coexist.
OVERLAP_MAX_PIXELS = 16_000_000


def _process(args: argparse.Namespace, jobs: list[Job], device, dtype) -> tuple[int, int, bool]:
    """Upscale each job; the model is loaded at the first readable input.

    Reading the next input and writing the last output run in worker threads beside the
    network. Returns (written, failed, model_ok); model_ok False stops the batch.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    from tqdm import tqdm

    from tadsr.commands import UsageError
    from tadsr.inference.imageio import (
        ImageReadError,
        ImageWriteError,
        format_loss,
        read_image,
        write_image,
    )

    up = None
    written = failed = 0
    bar = tqdm(total=len(jobs), desc="images", unit="img", position=0,
               disable=args.quiet or not sys.stderr.isatty())  # fmt: skip

    def read(job: Job):
        if job.dst.exists() and os.path.samefile(job.dst, job.src):
            raise ImageWriteError(f"{job.dst}: refusing to replace the input")
        return read_image(job.src, max_pixels=args.max_pixels)

    def report(job: Job, exc: BaseException) -> None:
        nonlocal failed
        failed += 1
        if isinstance(exc, (ImageReadError, ImageWriteError)):
            _say(f"{PROG}: {exc}")
        else:  # out of memory, a model error...: name the file, go on
            _say(f"{PROG}: {job.src}: failed: {type(exc).__name__}: {one_line(exc)}")

    def finish(pending: tuple[Job, Future] | None) -> None:
        nonlocal written
        if pending is None:
            return
        job, fut = pending
        try:
            fut.result()
            written += 1
        except Exception as exc:
            report(job, exc)
        bar.update()

    pending: tuple[Job, Future] | None = None
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tadsr-io") as pool:
        reads = {0: pool.submit(read, jobs[0])}  # the inputs read and not yet used
        for i, job in enumerate(jobs):
            if i + 1 < len(jobs):
                reads[i + 1] = pool.submit(read, jobs[i + 1])
            bar.set_postfix_str(job.src.name, refresh=False)
            try:
                pic = reads.pop(i).result()  # the input is dropped once used
                if up is None:
                    up = _load_upscaler(args, device, dtype)
                    if up is None:
                        finish(pending)
                        bar.close()
                        for f in reads.values():
                            f.cancel()
                        return written, failed, False
                out = up.upscale_picture(pic)
            except (KeyboardInterrupt, UsageError):
                raise
            except Exception as exc:
                report(job, exc)
                bar.update()
                continue
            if pic.note and not args.quiet:
                _say(f"{PROG}: note: {job.src}: {pic.note}")
            if args.fidelity == "auto" and not args.quiet:  # parsed: "auto" in lower case
                _say(f"{PROG}: {job.src}: fidelity auto -> {up.last_fidelity:g}")
            loss = format_loss(out, job.dst.suffix)
            if loss:  # said even under --quiet: the file holds less than the result
                _say(f"{PROG}: warning: {job.dst}: {loss}")
            finish(pending)
            pending = (job, pool.submit(write_image, job.dst, out, args.quality))
            if out.height * out.width > OVERLAP_MAX_PIXELS:
                finish(pending)
                pending = None
        finish(pending)
    bar.close()
    return written, failed, True
