"""Training the ResShift teacher (SPEC §1-3): x0-prediction with MSE, t ~ U{0..T-1}.

x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps;   L = || f(x_t/c_t, t, lq) - x0 ||^2
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from tadsr.data.degradation import build_degradation
from tadsr.diffusion import Process
from tadsr.nets.unet import SwinUNet
from tadsr.train import distributed
from tadsr.train.common import (
    RunLog,
    after_step,
    build_codec,
    config_json,
    finite_or_raise,
    grad_norm,
    latents,
    lr_lambda,
    micro_batches,
    training_crops,
    validate,
)
from tadsr.train.config import TeacherConfig
from tadsr.train.ema import EMA
from tadsr.train.state import load_state


def autocast_for(mode: str, device: torch.device):
    from tadsr.utils.device import autocast_dtype

    dtype = autocast_dtype(mode, device)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def train_teacher(
    cfg: TeacherConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    stop_after: int | None = None,
) -> Path:
    """Train (or resume) a teacher; returns the exported EMA weights file.

    `stop_after` ends the process after that many steps of this call (as a kill would),
    leaving the last checkpoint; used to test exact resumption.
    """
    run_dir = Path(run_dir)
    d = distributed.setup(device)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    model = SwinUNet(cfg.unet)
    if cfg.run.init_from and not resume:
        init_weights(model, cfg.run.init_from)
    model = model.to(d.device)
    ema = EMA(model, cfg.run.ema)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.optim.lr,
        betas=tuple(cfg.optim.betas),
        weight_decay=cfg.optim.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.optim.warmup, cfg.optim.decay_from, cfg.run.iterations)
    )
    scaler = torch.amp.GradScaler(enabled=cfg.run.mixed_precision == "fp16")
    ckpt = run_dir / "checkpoints" / "last.pt"
    objects = {"model": model, "ema": ema, "opt": opt, "sched": sched, "scaler": scaler}
    start = 0
    if resume and ckpt.is_file():
        start = int(load_state(ckpt, objects, config_json(cfg))["step"])
    net = (
        DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
        if d.enabled
        else model
    )

    codec = build_codec(cfg.codec, d.device)
    process = Process(cfg.schedule)
    data = training_crops(cfg)
    degradation = build_degradation(cfg.data.degradation, scale=cfg.scale)
    log = RunLog(run_dir, cfg, d, cfg.run.iterations, start)
    if start:
        log.event(f"resumed from {ckpt} at step {start}")
    accum = cfg.run.grad_accum
    step = start
    try:
        while step < cfg.run.iterations:
            model.train()
            total = 0.0
            for m, mb in enumerate(
                micro_batches(
                    data,
                    degradation,
                    step=step,
                    batch_size=cfg.run.batch_size,
                    accum=accum,
                    d=d,
                    seed=cfg.run.seed,
                )
            ):
                x0, y = latents(codec, mb.hr, mb.lq, cfg.scale)
                g = mb.generator
                t = torch.randint(0, process.num_steps, (x0.shape[0],), generator=g)
                noise = torch.randn(x0.shape, generator=g).to(d.device)
                t = t.to(d.device)
                x_t = process.q_sample(x0, y, t, noise)
                sync = (
                    contextlib.nullcontext() if (m == accum - 1 or not d.enabled) else net.no_sync()
                )
                with sync:
                    with autocast_for(cfg.run.mixed_precision, d.device):
                        pred = net(process.scale_input(x_t, t), t, mb.lq)
                    loss = F.mse_loss(pred.float(), x0)
                    scaler.scale(loss / accum).backward()
                total += loss.item() / accum
            scaler.unscale_(opt)
            gnorm = grad_norm(model.parameters(), cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
            ema.update(model)
            step += 1
            log.advance()
            finite_or_raise(torch.tensor(total), step)
            values = {
                "loss": total,
                "grad_norm": float(gnorm),
                "lr": float(opt.param_groups[0]["lr"]),
            }
            if after_step(
                step,
                cfg=cfg,
                d=d,
                log=log,
                values=values,
                ckpt=ckpt,
                objects=objects,
                start=start,
                stop_after=stop_after,
                validate_fn=lambda png: validate(
                    ema.model,
                    codec,
                    process,
                    scale=cfg.scale,
                    kind="teacher",
                    data=cfg.data,
                    png=png,
                ),
            ):
                return ckpt
        out = run_dir / "model.safetensors"
        if d.main:
            export_teacher(ema.model, codec, cfg, out, step)
            log.event(f"exported EMA weights to {out}")
        d.barrier()
        return out
    finally:
        log.close()
        distributed.teardown(d)


def init_weights(model: SwinUNet, path: str) -> None:
    """Start from another model file's UNet weights; its network must be the same shape."""
    from tadsr.checkpoints.io import CheckpointError, load_model_file
    from tadsr.models import resolve_model

    _, unet, _ = load_model_file(resolve_model(path))
    if unet is None:
        raise CheckpointError(f"{path}: holds no UNet weights to start from")
    try:
        model.load_state_dict(unet.state_dict())
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{path}: does not fit this run's UNet ({first})") from None


def export_teacher(model, codec, cfg: TeacherConfig, out: Path, step: int) -> Path:
    from tadsr.checkpoints.io import save_model

    return save_model(
        out,
        unet=model,
        unet_config=cfg.unet,
        codec=codec,
        schedule=cfg.schedule,
        kind="sr_teacher",
        steps=cfg.schedule.steps,
        scale=cfg.scale,
        provenance={
            "trained_by": "tadsr train teacher",
            "preset": cfg.name,
            "iterations": step,
            "data": cfg.data.root,
            "degradation": cfg.data.degradation,
        },
    )
