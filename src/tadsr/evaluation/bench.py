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
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, model, size, steps, device, dtype, repeats, threads))
    p.start()
    result = None
    while result is None:  # poll, so that a child that dies without answering ends the wait
        try:
            result = q.get(timeout=1.0)
        except queue_mod.Empty:
            if not p.is_alive():
                try:  # it may have answered just before exiting
                    result = q.get(timeout=1.0)
                except queue_mod.Empty:
                    code = p.exitcode
                    result = {"model": model, "error": f"the measuring process died (exit {code})"}
    p.join()
    if "error" not in result:
        result["s_per_out_mp"] = result["latency_s"] / result["out_megapixels"]
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
