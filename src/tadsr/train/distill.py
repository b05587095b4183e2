"""TAD-SR distillation of a one-step student from a frozen ResShift teacher (SPEC §4-5).

Per step, with one eps shared by student and teacher:
    z = y + kappa sqrt(eta_{T-1}) eps,   x0_hat = student(z / c_{T-1}, T-1, lq)
    L = w_reg ||x0_hat - z_teacher||^2 + w_hfsd L_hfsd + w_gan L_G
where z_teacher is the teacher's deterministic T-step sample from the same z. The
time-aware discriminator (heads over the frozen teacher encoder) is updated first.

The teacher's T steps dominate the cost on a CPU. With `teacher_cache = N` the run first
computes N fixed (crop, degradation, eps, z_teacher) samples, then trains on them with fresh
HFSD and discriminator draws each step: the same objective over a fixed sample set.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from tadsr.data.degradation import build_degradation
from tadsr.diffusion import Denoiser, sample_deterministic
from tadsr.losses import d_hinge_loss, g_hinge_loss, hfsd_loss, regression_loss
from tadsr.losses.adversarial import all_logits
from tadsr.nets.discriminator import TimeAwareDiscriminator
from tadsr.nets.unet import feature_channels
from tadsr.train import distributed
from tadsr.train.common import (
    RunLog,
    after_step,
    config_json,
    finite_or_raise,
    grad_norm,
    latents,
    lr_lambda,
    micro_batches,
    step_generator,
    training_crops,
    validate,
)
from tadsr.train.config import DistillConfig
from tadsr.train.ema import EMA
from tadsr.train.state import load_state
from tadsr.train.teacher import autocast_for


def load_teacher(cfg: DistillConfig, device: torch.device):
    """The frozen teacher pipeline (net in eval mode, no gradients to its parameters)."""
    from tadsr.inference.pipeline import SRPipeline

    pipe = SRPipeline.from_pretrained(
        cfg.teacher, autoencoder=cfg.autoencoder or None, device=device, kind="teacher"
    )
    pipe.net.eval().requires_grad_(False)
    return pipe


class TeacherCache:
    """N fixed (hr, lq, eps, z_teacher) samples, computed in shards by rank, kept on disk."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.t = tensors
        self.n = tensors["hr"].shape[0]

    @classmethod
    def build(cls, path: Path, cfg: DistillConfig, teacher, data, degradation, d, log):
        shard = path.with_name(f"{path.stem}.rank{d.rank}.pt")
        if not path.is_file():
            if not shard.is_file():
                mine = list(range(d.rank, cfg.teacher_cache, d.world))
                parts: dict[str, list] = {"index": [], "hr": [], "lq": [], "eps": [], "zt": []}
                t0 = time.time()
                for s in range(0, len(mine), 16):
                    idx = mine[s : s + 16]
                    got = cache_samples(idx, cfg, teacher, data, degradation, d.device)
                    for k, v in got.items():
                        parts[k].append(v)
                    log.event(
                        f"teacher cache: {s + len(idx)}/{len(mine)} samples "
                        f"({time.time() - t0:.0f} s)"
                    )
                _save_atomic({k: torch.cat(v) for k, v in parts.items()}, shard)
            d.barrier()
            if d.main:
                shards = [
                    torch.load(path.with_name(f"{path.stem}.rank{r}.pt"), weights_only=True)
                    for r in range(d.world)
                ]
                merged = {k: torch.cat([s[k] for s in shards]) for k in shards[0]}
                order = merged["index"].argsort()
                _save_atomic({k: v[order] for k, v in merged.items()}, path)
            d.barrier()
        return cls(torch.load(path, weights_only=True))

    def batch(self, indices: list[int], device):
        idx = torch.tensor([i % self.n for i in indices])
        return tuple(self.t[k][idx].to(device) for k in ("hr", "lq", "eps", "zt"))


def cache_samples(indices, cfg: DistillConfig, teacher, data, degradation, device) -> dict:
    """Cache entries for these sample indices. Each sample's crop, degradation and noise come
    from its own generator, seeded by its index alone, so the cache is the same whatever the
    number of processes that shard it; the teacher then runs on the whole group at once."""
    hrs, lqs, epss = [], [], []
    with torch.no_grad():
        for i in indices:
            g = step_generator(cfg.run.seed, i, 0, 0, "cache")
            hr = data[i][None]
            lqs.append(degradation(hr, g) * 2 - 1)
            hrs.append(hr * 2 - 1)
            f = teacher.codec.factor
            shape = (1, teacher.codec.channels, hr.shape[-2] // f, hr.shape[-1] // f)
            epss.append(torch.randn(shape, generator=g))
        hr, lq, eps = torch.cat(hrs), torch.cat(lqs), torch.cat(epss)
        _, y = latents(teacher.codec, hr.to(device), lq.to(device), teacher.scale)
        zt = teacher_target(teacher, cfg, y, lq.to(device), eps.to(device))
    return {"index": torch.tensor(indices), "hr": hr, "lq": lq, "eps": eps, "zt": zt.cpu()}


def teacher_target(teacher, cfg: DistillConfig, y, lq, eps):
    """The regression target: the teacher's deterministic sample from the student's own
    starting point, over all T steps or (``cfg.teacher_steps``) respaced to fewer."""
    n = cfg.teacher_steps
    process = teacher.process if not n else teacher.process.respaced(n)
    return sample_deterministic(Denoiser(teacher.net, process), y, lq, noise=eps)


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def distill(
    cfg: DistillConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    stop_after: int | None = None,
) -> Path:
    run_dir = Path(run_dir)
    d = distributed.setup(device)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    teacher = load_teacher(cfg, d.device)
    process, codec, scale = teacher.process, teacher.codec, teacher.scale
    T1 = process.last_t
    student = copy.deepcopy(teacher.net).train().requires_grad_(True)
    disc = TimeAwareDiscriminator(feature_channels(teacher.net.cfg)).to(d.device)
    use_gan = cfg.w_gan > 0
    ema = EMA(student, cfg.run.ema)
    opt = torch.optim.AdamW(
        student.parameters(),
        lr=cfg.optim.lr,
        betas=tuple(cfg.optim.betas),
        weight_decay=cfg.optim.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.optim.warmup, cfg.optim.decay_from, cfg.run.iterations)
    )
    d_opt = torch.optim.AdamW(
        disc.parameters(), lr=cfg.disc_lr, betas=(0.9, 0.999), weight_decay=0.0
    )
    ckpt = run_dir / "checkpoints" / "last.pt"
    scaler = torch.amp.GradScaler(enabled=cfg.run.mixed_precision == "fp16")
    objects = {
        "model": student,
        "ema": ema,
        "opt": opt,
        "sched": sched,
        "disc": disc,
        "disc_opt": d_opt,
        "scaler": scaler,
    }
    start = (
        int(load_state(ckpt, objects, config_json(cfg))["step"]) if resume and ckpt.is_file() else 0
    )
    ddp = (
        (lambda m: DDP(m, device_ids=[d.device.index] if d.device.type == "cuda" else None))
        if d.enabled
        else (lambda m: m)
    )
    net, dnet = ddp(student), (ddp(disc) if use_gan else disc)

    data = training_crops(cfg)
    degradation = build_degradation(cfg.data.degradation, scale=scale)
    log = RunLog(run_dir, cfg, d, cfg.run.iterations, start)
    cache = None
    if cfg.teacher_cache > 0:
        cache_path = Path(cfg.teacher_cache_file or run_dir / "teacher_cache.pt")
        cache = TeacherCache.build(cache_path, cfg, teacher, data, degradation, d, log)
    accum = cfg.run.grad_accum
    per = cfg.run.batch_size // (accum * d.world)
    step = start
    try:
        while step < cfg.run.iterations:
            stats = {"reg": 0.0, "hfsd": 0.0, "g": 0.0, "d": 0.0, "d_real": 0.0, "d_fake": 0.0}
            for m, (hr, lq, eps, z_teacher, g) in enumerate(
                _batches(cache, data, degradation, teacher, cfg, step, per, accum, d)
            ):
                x0_gt, y = latents(codec, hr, lq, scale)
                z = process.prior_sample(y, eps)
                tt = process.timesteps(T1, y.shape[0], y.device)
                last = m == accum - 1 or not d.enabled
                with contextlib.nullcontext() if last else net.no_sync():
                    with autocast_for(cfg.run.mixed_precision, d.device):
                        x0_hat = net(process.scale_input(z, tt), tt, lq).float()
                    if use_gan:  # discriminator first, on this micro-batch
                        t_d = torch.randint(0, T1, (y.shape[0],), generator=g).to(y.device)
                        n_d = torch.randn(y.shape, generator=g).to(y.device)
                        ld, real, fake = _disc_step(
                            teacher, process, dnet, d_opt, x0_gt, x0_hat.detach(), y, lq, t_d, n_d
                        )
                        stats["d"] += ld / accum
                        stats["d_real"] += real / accum
                        stats["d_fake"] += fake / accum
                    loss = cfg.w_reg * (l_reg := regression_loss(x0_hat, z_teacher))
                    stats["reg"] += l_reg.item() / accum
                    if cfg.w_hfsd > 0:
                        l_h = hfsd_loss(
                            teacher.net,
                            process,
                            x0_hat,
                            z_teacher,
                            y,
                            lq,
                            g,
                            max_t=cfg.hfsd_max_t,
                            reference=cfg.hfsd_reference,
                            noise=cfg.hfsd_noise,
                        )
                        loss = loss + cfg.w_hfsd * l_h
                        stats["hfsd"] += l_h.item() / accum
                    if use_gan:
                        disc.requires_grad_(False)
                        fake = process.q_sample(x0_hat, y, t_d, n_d)
                        feats = teacher.net.encoder_features(
                            process.scale_input(fake, t_d), t_d, lq
                        )
                        l_g = g_hinge_loss(disc(feats, t_d))
                        disc.requires_grad_(True)
                        loss = loss + cfg.w_gan * l_g
                        stats["g"] += l_g.item() / accum
                    scaler.scale(loss / accum).backward()
            scaler.unscale_(opt)
            gnorm = grad_norm(student.parameters(), cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
            ema.update(student)
            step += 1
            log.advance()
            for term in ("reg", "hfsd", "g", "d"):  # every loss term, not only the regression
                finite_or_raise(torch.tensor(stats[term]), step, term)
            if after_step(
                step,
                cfg=cfg,
                d=d,
                log=log,
                values={**stats, "grad_norm": float(gnorm)},
                ckpt=ckpt,
                objects=objects,
                start=start,
                stop_after=stop_after,
                validate_fn=lambda png: validate(
                    ema.model,
                    teacher.codec,
                    process,
                    scale=scale,
                    kind="student",
                    data=cfg.data,
                    png=png,
                ),
            ):
                return ckpt
        out = run_dir / "model.safetensors"
        if d.main:
            export_student(ema.model, teacher, cfg, out, step)
            log.event(f"exported EMA student to {out}")
        d.barrier()
        return out
    finally:
        log.close()
        distributed.teardown(d)


def _batches(cache, data, degradation, teacher, cfg, step, per, accum, d):
    """(hr, lq, eps, z_teacher, generator) per micro-batch of this step and rank."""
    if cache is not None:
        for m in range(accum):
            base = ((step * accum + m) * d.world + d.rank) * per
            hr, lq, eps, zt = cache.batch(list(range(base, base + per)), d.device)
            yield hr, lq, eps, zt, step_generator(cfg.run.seed, step, m, d.rank)
        return
    for mb in micro_batches(
        data,
        degradation,
        step=step,
        batch_size=cfg.run.batch_size,
        accum=accum,
        d=d,
        seed=cfg.run.seed,
    ):
        _, y = latents(teacher.codec, mb.hr, mb.lq, teacher.scale)
        eps = torch.randn(y.shape, generator=mb.generator).to(d.device)
        with torch.no_grad():
            zt = teacher_target(teacher, cfg, y, mb.lq, eps)
        yield mb.hr, mb.lq, eps, zt, mb.generator


def _disc_step(teacher, process, dnet, d_opt, x0_gt, x0_fake, y, lq, t_d, n_d):
    """One hinge update of the discriminator heads on real = q(x0_gt), fake = q(x0_hat).
    Returns (loss, mean real logit, mean fake logit) before the update: the logged logits
    show whether the discriminator tells the two apart."""
    with torch.no_grad():
        real = process.q_sample(x0_gt, y, t_d, n_d)
        fake = process.q_sample(x0_fake, y, t_d, n_d)
        f_real = teacher.net.encoder_features(process.scale_input(real, t_d), t_d, lq)
        f_fake = teacher.net.encoder_features(process.scale_input(fake, t_d), t_d, lq)
    d_opt.zero_grad(set_to_none=True)
    real, fake = dnet(f_real, t_d), dnet(f_fake, t_d)
    loss = d_hinge_loss(real, fake)
    loss.backward()
    d_opt.step()
    mean = lambda logits: float(all_logits(logits).detach().mean())  # noqa: E731
    return loss.item(), mean(real), mean(fake)


def export_student(model, teacher, cfg: DistillConfig, out: Path, step: int) -> Path:
    from tadsr.checkpoints.io import save_model

    losses = {
        "reg": cfg.w_reg,
        "hfsd": cfg.w_hfsd,
        "gan": cfg.w_gan,
        "hfsd_reference": cfg.hfsd_reference,
        "hfsd_noise": cfg.hfsd_noise,
    }
    return save_model(
        out,
        unet=model,
        unet_config=model.cfg,
        codec=teacher.codec,
        schedule=teacher.process.cfg,
        kind="sr_student",
        steps=1,
        scale=teacher.scale,
        provenance={
            "trained_by": "tadsr train distill",
            "preset": cfg.name,
            "teacher": str(cfg.teacher),
            "iterations": step,
            "losses": losses,
            "teacher_cache": cfg.teacher_cache,
            "data": cfg.data.root,
        },
    )


__all__ = ["distill"]
