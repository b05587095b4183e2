"""`tadsr bench --parts data`: pairs per second of the training data path, part by part.

- crop reading: the dataset's HR crops, one thread, photos already decoded (the steady
  state: each process keeps the photos it decoded);
- degradation: the configured degradation on batches of crops, on `device` (the reference
  path on the CPU, one thread as in a worker; the tensor path on a GPU);
- whole path: `train.feed.Feed` as a run uses it, with `workers` processes, making
  micro-batches of `batch` pairs on `device` (degradation in the workers on the CPU, on the
  device otherwise).
"""

from __future__ import annotations

import contextlib
import time

import torch

from tadsr.train.distributed import Dist


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _config(root: str, degradation: str, crop: int, batch: int, workers: int, on_device: bool):
    from tadsr.train.config import resolve

    sets = [f"data.root={root}", f"data.degradation={degradation}", f"data.crop_size={crop}",
            f"run.batch_size={batch}", "run.grad_accum=1", f"data.workers={workers}",
            f"data.degrade_on={'device' if on_device else 'cpu'}"]  # fmt: skip
    return resolve("teacher", "sr", sets)


def measure_data(
    root: str, *, workers: int = 0, device: str = "cpu", pairs: int = 64, batch: int = 8,
    crop: int = 256, degradation: str = "realesrgan",
) -> dict:  # fmt: skip
    """Pairs per second of crop reading, degradation and the whole path (see the module)."""
    from tadsr.data.degradation import build_degradation
    from tadsr.train.batches import step_generator
    from tadsr.train.feed import make_feed, one_thread

    dev = torch.device(device)
    on_device = dev.type != "cpu"
    cfg = _config(root, degradation, crop, batch, workers, on_device)
    feed, crops, reference = make_feed(cfg, Dist(device=dev), scale=4)
    out = {"crop": crop, "batch": batch, "workers": workers, "device": str(dev),
           "degradation": degradation, "photos": crops.photo_count}  # fmt: skip
    steps = max(1, pairs // batch)
    data = feed.data  # the whole path's own micro-batches (steps 1..steps), to time the parts
    with one_thread():
        for j in range(crops.photo_count):  # decode every photo once, outside the timing
            crops.image(j)
        t = time.perf_counter()
        hrs = [crops[i] for i in range(batch, batch * (steps + 1))]
        out["crops_per_s"] = len(hrs) / (time.perf_counter() - t)
    deg = build_degradation(degradation, scale=4, on_device=True) if on_device else reference
    batches = [torch.stack(hrs[i : i + batch]).to(dev) for i in range(0, len(hrs), batch)]
    with one_thread() if not on_device else contextlib.nullcontext():
        deg(batches[0], torch.Generator().manual_seed(0))  # warm-up (kernels, caches)
        _sync(dev)
        t = time.perf_counter()
        for k, hr in enumerate(batches):
            deg(hr, step_generator(data.seed, k + 1, 0, 0))
        _sync(dev)
        out["degradation_per_s"] = len(batches) * batch / (time.perf_counter() - t)
    try:
        for _ in feed.batches(0):  # start-up of the workers, outside the timing
            pass
        t = time.perf_counter()
        for s in range(1, steps + 1):
            for _ in feed.batches(s):
                pass
        _sync(dev)
        out["whole_per_s"] = steps * batch / (time.perf_counter() - t)
    finally:
        feed.close()
    return out
