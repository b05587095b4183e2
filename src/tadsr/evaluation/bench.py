"""`tadsr bench`: the one-step student against the multi-step teacher, side by side.

Each model runs in its own child process so that its peak memory is its own: the child
loads the model, resets the kernel's peak-RSS counter (/proc/self/clear_refs), runs, and
reports latency (median over repeats after a warm-up), seconds per output megapixel and
peak resident memory (CUDA: peak allocated memory).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tadsr.inference.onnx_backend import OnnxUpscaler
    from tadsr.inference.upscaler import Upscaler


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _child(
    queue,
    model: str,
    size: tuple[int, int],
    steps: int | None,
    device: str,
    dtype: str,
    repeats: int,
    threads: int,
) -> None:
    try:
        import torch

        from tadsr.pipeline import SRPipeline
        from tadsr.utils.device import pick_dtype

        if threads:
            torch.set_num_threads(threads)
        pipe = SRPipeline.from_pretrained(model, device=device, dtype=pick_dtype(dtype))
        from tadsr.inference.core import steps_error

        why = steps_error(steps, pipe.kind, getattr(pipe, "max_steps", None))
        if why:  # a usage error (exit 2), as `tadsr upscale --steps` gives
            queue.put({"model": model, "error": why, "usage": True})
            return
        w, h = size
        lq = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1
        n = steps or pipe.default_steps
        pipe(lq, generator=torch.Generator().manual_seed(1), steps=n)  # warm-up
        cuda = pipe.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        base = _rss_mb("VmRSS")
        peak_ok = _reset_peak()
        times = []
        for i in range(repeats):
            t0 = time.perf_counter()
            pipe(lq, generator=torch.Generator().manual_seed(2 + i), steps=n)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        peak = (
            torch.cuda.max_memory_allocated() / 2**20
            if cuda
            else (_rss_mb("VmHWM") if peak_ok else float("nan"))
        )
        queue.put(
            {
                "model": model,
                "kind": pipe.kind,
                "steps": n,
                "evaluations": n,
                "latency_s": statistics.median(times),
                "runs": times,
                "out_megapixels": (w * pipe.scale) * (h * pipe.scale) / 1e6,
                "peak_mb": peak,
                "base_rss_mb": base,
                "device": str(pipe.device),
            }
        )
    except Exception as exc:  # reported in words by the parent
        queue.put({"model": model, "error": f"{type(exc).__name__}: {exc}"})


def measure(
    model: str,
    size: tuple[int, int],
    *,
    steps: int | None = None,
    device="cpu",
    dtype="fp32",
    repeats: int = 3,
    threads: int = 0,
) -> dict:
    result = _in_child(_child, model, (model, size, steps, device, dtype, repeats, threads))
    if "error" not in result:
        result["s_per_out_mp"] = result["latency_s"] / result["out_megapixels"]
    return result


def _die_with_parent() -> None:
    """In a measuring child: end when the parent ends, whatever ends it (Linux: the kernel
    sends SIGKILL at the parent's death; elsewhere a thread watches the parent's pid), and
    leave Ctrl-C to the parent, which stops the child itself."""
    import os
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _child_main(target, queue, *args) -> None:
    _die_with_parent()
    target(queue, *args)


def _in_child(target, model: str, args: tuple) -> dict:
    """Run `target(queue, *args)` in a spawned process; its answer, or an error dict. The
    child never outlives this call: Ctrl-C or any error here stops it first."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child_main, args=(target, q, *args))
    p.start()
    result = None
    try:
        while result is None:  # poll, so that a child that dies without answering ends it
            try:
                result = q.get(timeout=1.0)
            except queue_mod.Empty:
                if not p.is_alive():
                    try:  # it may have answered just before exiting
                        result = q.get(timeout=1.0)
                    except queue_mod.Empty:
                        code = p.exitcode
                        result = {"model": model,
                                  "error": f"the measuring process died (exit {code})"}
        p.join()
    finally:
        if p.is_alive():
            p.kill()
            p.join()
        q.close()
        q.join_thread()
    return result


def bench(
    student: str,
    teacher: str,
    size: tuple[int, int],
    *,
    device="cpu",
    dtype="fp32",
    repeats: int = 3,
    teacher_steps: int | None = None,
    threads: int = 0,
) -> dict:
    s = measure(student, size, device=device, dtype=dtype, repeats=repeats, threads=threads)
    t = measure(
        teacher,
        size,
        steps=teacher_steps,
        device=device,
        dtype=dtype,
        repeats=repeats,
        threads=threads,
    )
    out = {"size": list(size), "device": device, "dtype": dtype, "student": s, "teacher": t}
    if "error" not in s and "error" not in t:
        out["speedup"] = t["latency_s"] / s["latency_s"]
    return out


# ----------------------------------------------------------------------- the whole path
STAGES = ("decode", "noise", "network", "tiling", "encode")


def backends() -> list[tuple[str, str]]:
    """(backend, dtype) pairs this machine can run on the CPU: torch fp32, torch bf16 (the
    CPU has native bf16, AVX512-BF16 or AMX, read at run time; else emulated and listed as
    such by the caller), onnxruntime fp32 when installed."""
    import importlib.util

    out = [("torch", "fp32"), ("torch", "bf16")]
    if importlib.util.find_spec("onnxruntime") is not None:
        out.append(("onnxruntime", "fp32"))
    return out


def _path_child(queue, model, image, backend, dtype, repeats, threads, tile) -> None:
    """Time `read_image -> upscale_picture -> write_image` by stage, in this fresh process."""
    import contextlib

    with contextlib.ExitStack() as stack:  # the output folder goes, whatever happens
        _path_measure(stack, queue, model, image, backend, dtype, repeats, threads, tile)


def _path_measure(stack, queue, model, image, backend, dtype, repeats, threads, tile) -> None:
    try:
        import tempfile
        from unittest import mock

        from tadsr.inference import tiling
        from tadsr.inference.imageio import read_image, write_image

        spent = dict.fromkeys(STAGES, 0.0)

        def timed(stage, fn):
            def wrapper(*a, **k):
                t0 = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    spent[stage] += time.perf_counter() - t0

            return wrapper

        # the timing wrappers are patched in for this run (a fresh process of its own)
        patch = mock.patch.object
        for cls, name in ((tiling.BlockNoise, "window"), (tiling.NoiseWindow, "group")):
            stack.enter_context(patch(cls, name, timed("noise", getattr(cls, name))))
        opts = {"tile": tile}
        up: OnnxUpscaler | Upscaler
        if backend == "onnxruntime":
            from tadsr.inference.onnx_backend import OnnxUpscaler, cached_onnx

            up = OnnxUpscaler(cached_onnx(model), threads=threads or None, **opts)
            stack.enter_context(patch(up.student, "run", timed("network", up.student.run)))
        else:
            import torch

            from tadsr.inference.upscaler import Upscaler

            if threads:
                torch.set_num_threads(threads)
            up = Upscaler.from_pretrained(model, device="cpu", dtype=dtype, **opts)
            timed_pipe = _TimedPipeline(up.pipeline, timed("network", up.pipeline.__call__))
            stack.enter_context(patch(up, "pipeline", timed_pipe))
        out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tadsr-bench-")))
        whole: list[float] = []
        per_run = []
        for i in range(repeats + 1):  # the first run warms up
            for k in spent:
                spent[k] = 0.0
            t0 = time.perf_counter()
            t = time.perf_counter()
            pic = read_image(image)
            spent["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            out = up.upscale_picture(pic)
            inner = time.perf_counter() - t
            t = time.perf_counter()
            write_image(out_dir / "out.png", out)
            spent["encode"] += time.perf_counter() - t
            total = time.perf_counter() - t0
            spent["tiling"] = inner - spent["network"] - spent["noise"]
            if i:
                whole.append(total)
                per_run.append(dict(spent))
        best = min(range(repeats), key=lambda j: whole[j])
        mp_out = out.height * out.width / 1e6
        queue.put({
            "backend": backend, "dtype": dtype, "image": str(image),
            "out_megapixels": mp_out,
            "whole_s": whole[best], "runs": whole,
            "s_per_out_mp": whole[best] / mp_out,
            "stages_s_per_out_mp": {k: v / mp_out for k, v in per_run[best].items()},
        })  # fmt: skip
    except Exception as exc:  # reported in words by the parent
        queue.put({"model": model, "error": f"{type(exc).__name__}: {exc}"})


class _TimedPipeline:
    """A pipeline whose calls go through `call` (a timing wrapper); all else delegated."""

    def __init__(self, pipe, call) -> None:
        self._pipe, self._call = pipe, call

    def __call__(self, *a, **k):
        return self._call(*a, **k)

    def __getattr__(self, name):
        return getattr(self._pipe, name)


def measure_path(
    model: str, image: str | Path, backend: str, dtype: str = "fp32", *, repeats: int = 3,
    threads: int = 0, tile: int | None = None,
) -> dict:  # fmt: skip
    """s/MP of the whole file-to-file path and of each stage (fastest of `repeats` runs
    after a warm-up, in a fresh process): decode (read the PNG), noise (draw the noise
    blocks), network (the model call on each tile: padding, bicubic, network, clamp),
    tiling (the rest of upscale_picture: tensors in, blending, quantising), encode (PNG)."""
    args = (model, str(image), backend, dtype, repeats, threads, tile)
    return _in_child(_path_child, model, args)


def measure_startup(argv: list[str], repeats: int = 3) -> float:
    """Fastest wall time of a fresh `python -m tadsr.cli ARGV` (seconds); raises
    RuntimeError with its last stderr line when it fails."""
    import subprocess
    import sys

    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "tadsr.cli", *argv], capture_output=True,
                           text=True)  # fmt: skip
        elapsed = time.perf_counter() - t0
        if p.returncode != 0:
            lines = p.stderr.strip().splitlines() or ["(no message)"]
            raise RuntimeError(f"tadsr {' '.join(argv)}: exit {p.returncode}: {lines[-1]}")
        best = min(best, elapsed)
    return best
