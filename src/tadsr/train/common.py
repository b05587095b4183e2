"""Step mechanics shared by the teacher and distillation loops: run folder, codec, data
for a step, learning-rate warm-up, logging, validation, checkpoint paths.

Every random draw of a step comes from a generator seeded by (seed, step, micro-batch,
rank), and the data of a step is a function of the step, so a resumed run continues exactly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.train.config import dump, to_dict
from tadsr.train.distributed import Dist
from tadsr.train.state import save_state


def step_generator(
    seed: int, step: int, micro: int, rank: int, stream: str = ""
) -> torch.Generator:
    h = hashlib.sha256(f"{seed}/{step}/{micro}/{rank}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") & (2**63 - 1))


def build_codec(codec_cfg: dict, device: torch.device):
    """The frozen codec of a config: pixel-unshuffle (no weights) or an official VQ file."""
    from tadsr.nets.codec import VQCodec
    from tadsr.nets.codec import build_codec as _build

    if codec_cfg.get("kind") == "vq" and "path" in codec_cfg:
        from tadsr.checkpoints.official import load_official

        codec = VQCodec(load_official(Path(codec_cfg["path"]), expect="vq").module)
    else:
        codec = _build(codec_cfg)
    return codec.to(device).eval().requires_grad_(False)


def training_crops(cfg):
    """The endless, seeded stream of HR training crops a run's config describes."""
    from tadsr.data.datasets import CropDataset

    return CropDataset(
        cfg.data.root,
        crop_size=cfg.data.crop_size,
        split="train",
        seed=cfg.run.seed,
        length=10**9,
        texture_candidates=cfg.data.texture_candidates,
    )


def lr_lambda(warmup: int, decay_from: int = 0, total: int = 0):
    """Learning-rate factor: linear warm-up over `warmup` steps, then constant; with
    `decay_from` > 0, a cosine decay from that step to 0 at step `total`. A pure function of
    the step, so a resumed run (even one given a longer `total`) follows the same curve."""

    def factor(step: int) -> float:
        f = min(1.0, (step + 1) / max(1, warmup))
        if 0 < decay_from <= step and total > decay_from:
            done = min(1.0, (step - decay_from) / (total - decay_from))
            f *= 0.5 * (1 + math.cos(math.pi * done))
        return f

    return factor


@dataclass
class MicroBatch:
    hr: Tensor  # [-1, 1]
    lq: Tensor  # [-1, 1], the LR image
    generator: torch.Generator


def grad_norm(params, max_norm: float) -> Tensor:
    """Total gradient norm, clipped to ``max_norm`` when it is > 0 (0 = no clipping)."""
    return torch.nn.utils.clip_grad_norm_(list(params), max_norm if max_norm > 0 else math.inf)


def micro_batches(
    dataset, degradation, *, step: int, batch_size: int, accum: int, d: Dist, seed: int
):
    """The micro-batches of one step for this rank (disjoint across ranks)."""
    per = batch_size // (accum * d.world)
    if per < 1 or per * accum * d.world != batch_size:
        raise ValueError(
            f"batch_size {batch_size} must be a multiple of grad_accum {accum} "
            f"x processes {d.world}"
        )
    for m in range(accum):
        base = ((step * accum + m) * d.world + d.rank) * per
        idx = [(base + i) % len(dataset) for i in range(per)]
        hr = torch.stack([dataset[i] for i in idx])
        g = step_generator(seed, step, m, d.rank)
        with torch.no_grad():
            lr = degradation(hr, g)
        yield MicroBatch(hr=(hr * 2 - 1).to(d.device), lq=(lr * 2 - 1).to(d.device), generator=g)


def latents(codec, hr: Tensor, lq: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """(x0, y): codec latents of the HR image and of the bicubic-upsampled LR image."""
    with torch.no_grad():
        up = F.interpolate(lq, scale_factor=scale, mode="bicubic", align_corners=False)
        return codec.encode(hr), codec.encode(up)


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep the rows of a CSV log up to ``step``: a run killed after its last checkpoint
    logged steps that the resumed run does again."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
    if len(keep) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, path)


class RunLog:
    """CSV log (rank 0), a progress bar with loss and ETA, and the resolved config."""

    def __init__(self, run_dir: Path, cfg, d: Dist, total: int, start: int):
        self.d = d
        self.run_dir = run_dir
        self.t0 = time.time()
        self.start = start
        self.total = total
        self.bar = None
        if d.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(dump(cfg))
            for name in ("log.csv", "val.csv"):
                _drop_rows_after(run_dir / name, start)
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=start,
                dynamic_ncols=True,
                disable=not sys.stderr.isatty() and os.environ.get("TADSR_PROGRESS") != "1",
                desc="train",
            )

    def step(self, step: int, values: dict, file: str = "log.csv") -> None:
        """One CSV row (a fixed set of columns per file: log.csv for training, val.csv)."""
        if not self.d.main:
            return
        path = self.run_dir / file
        elapsed = time.time() - self.t0
        row = {
            "step": step,
            "time_s": round(elapsed, 2),
            "s_per_step": round(elapsed / max(1, step - self.start), 3),
        }
        row.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()})
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.bar is not None:
            self.bar.set_postfix(
                {k: f"{v:.4g}" for k, v in values.items() if isinstance(v, float)}, refresh=False
            )

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def event(self, text: str) -> None:
        if self.d.main:
            msg = f"[{time.strftime('%H:%M:%S')}] {text}"
            (self.bar.write if self.bar is not None else print)(msg)
            with (self.run_dir / "events.txt").open("a") as f:
                f.write(msg + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def to_uint8(img: Tensor) -> np.ndarray:
    """(3,H,W) in [-1, 1] -> HxWx3 uint8."""
    x = ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def validate(
    net, codec, process, *, scale: int, kind: str, data, png: Path | None = None, seed: int = 0
) -> dict:
    """Sample the first `data.val_count` validation pairs with `net` (the EMA weights);
    mean PSNR-Y / SSIM-Y against HR, and a grid of (LR, SR, HR) written to `png`."""
    from PIL import Image

    from tadsr.data.datasets import PairedFolderDataset
    from tadsr.evaluation.fullref import psnr_y, ssim_y
    from tadsr.inference.pipeline import SRPipeline

    val_dir = Path(data.val_pairs)
    if data.val_count <= 0 or not (val_dir / "lr").is_dir():
        return {}
    pipeline = SRPipeline(
        net, codec, process, scale=scale, kind=kind, device=next(net.parameters()).device
    )
    ds = PairedFolderDataset(val_dir / "lr", val_dir / "hr")
    psnrs, ssims, tiles = [], [], []
    for i in range(min(data.val_count, len(ds))):
        lr, hr, _ = ds[i]
        g = torch.Generator().manual_seed(seed + i)
        sr = pipeline(lr[None] * 2 - 1, generator=g)[0]
        a, b = to_uint8(sr), to_uint8(hr * 2 - 1)
        psnrs.append(psnr_y(a, b))
        ssims.append(ssim_y(a, b))
        if len(tiles) < 4:
            up = F.interpolate(lr[None], scale_factor=4, mode="nearest")[0] * 2 - 1
            tiles.append(np.concatenate([to_uint8(up), a, b], axis=1))
    if png is not None and tiles:
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate(tiles, axis=0)).save(png)
    return {"psnr_y": float(np.mean(psnrs)), "ssim_y": float(np.mean(ssims))}


def finite_or_raise(loss: Tensor, step: int, name: str = "loss") -> None:
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"{name} is {loss.item()} at step {step}; lower the learning rate")


def config_json(cfg) -> dict:
    return json.loads(json.dumps(to_dict(cfg)))


def after_step(
    step: int,
    *,
    cfg,
    d: Dist,
    log: RunLog,
    values: dict,
    ckpt: Path,
    objects: dict,
    validate_fn,
    start: int,
    stop_after: int | None,
) -> bool:
    """The bookkeeping every loop does after an optimiser step: log, checkpoint (rank 0,
    atomically), validate with the EMA weights, and say whether to stop here (stop_after:
    as a kill would, leaving the checkpoint of this step). Returns True to stop."""
    run = cfg.run
    last = step == run.iterations
    stop = stop_after is not None and step - start >= stop_after
    if step % run.log_every == 0 or last:
        log.step(step, {k: d.mean(v) if isinstance(v, float) else v for k, v in values.items()})
    if step % run.save_every == 0 or last or stop:
        if d.main:
            save_state(ckpt, objects, step, config_json(cfg))
        d.barrier()
    if run.val_every and step % run.val_every == 0 and d.main and not stop:
        metrics = validate_fn(log.run_dir / "samples" / f"step{step:07d}.png")
        log.step(step, metrics, "val.csv")
        log.event(f"step {step}: validation {metrics}")
    return stop
