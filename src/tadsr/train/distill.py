"""TAD-SR distillation of a one-step student from a frozen ResShift teacher (TAD-SR paper, arXiv
2408.07476).

Per step, with one eps shared by student and teacher:
    z = y + kappa sqrt(eta_{T-1}) eps,   x0_hat = student(z / c_{T-1}, T-1, lq)
    L = w_reg ||x0_hat - z_teacher||^2 + w_hfsd L_hfsd + w_gan L_G
where z_teacher is the teacher's deterministic T-step sample from the same z (or, with
`reg_target: hr`, the HR latent: a faithful one-step model; with `teacher_input: clean`, the
teacher's sample from the bicubic LR of the same HR crop, so that a noisy or JPEG input is
taught the teacher's picture of the clean photo). `reg_norm: l1` makes the regression a mean
absolute error. `w_flat` adds the flat-area loss (`tadsr.losses.flat`: high frequencies the
student adds where the HR is smooth). With `reg_hf_weight` w < 1 the regression
weighs the decoded difference's high frequencies by w (`split_regression_loss`). The
time-aware discriminator (heads over the frozen teacher encoder, or with `disc_kind: pixel`
a patch discriminator on the decoded x_t) is updated first: `loss` yields the
discriminator's loss(es) before the student's, and the training loop steps the
discriminator's optimiser on each before it asks for the next (the objective holds no
optimiser and steps nothing).

The teacher's T steps dominate the cost on a CPU. With `teacher_cache = N` the run first
computes N fixed (crop, degradation, eps, z_teacher) samples, then trains on them with fresh
HFSD and discriminator draws each step: the same objective over a fixed sample set.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from tadsr.data.degradation import BicubicDegradation
from tadsr.diffusion import Denoiser, sample_deterministic
from tadsr.losses import (
    d_hinge_loss,
    flat_area_loss,
    g_hinge_loss,
    hfsd_loss,
    regression_loss,
    split_regression_loss,
)
from tadsr.losses.adversarial import all_logits
from tadsr.nets.discriminator import PixelDiscriminator, TimeAwareDiscriminator
from tadsr.nets.unet import feature_channels
from tadsr.train.batches import (
    disc_noise,
    first_index,
    latents,
    lr_latent,
    per_process,
    step_generator,
)
from tadsr.train.config import DistillConfig
from tadsr.train.disc_probe import probe_discriminator
from tadsr.train.distributed import Dist
from tadsr.train.feed import make_feed
from tadsr.train.loop import Loss, train_loop
from tadsr.train.validation import validate
from tadsr.utils.files import atomic_write


def load_teacher(cfg: DistillConfig, device: torch.device):
    """The frozen teacher (`checkpoints.LoadedModel`): net and codec on `device`, in eval
    mode, no gradients to their parameters."""
    from tadsr.checkpoints import load

    teacher = load(cfg.teacher, cfg.autoencoder or None)
    teacher.net.to(device).eval().requires_grad_(False)
    teacher.codec.to(device).eval().requires_grad_(False)
    return teacher


class DistillObjective:
    """TAD-SR: regression to the teacher's sample (or the HR latent) + HFSD + the time-aware
    GAN, whose discriminator (heads over the frozen teacher encoder, or the pixel patch
    discriminator, `disc`: the loop makes its optimiser with `disc_lr`) is updated first on
    each micro-batch."""

    def __init__(self, cfg: DistillConfig, d: Dist):
        self.cfg = cfg
        self.teacher = load_teacher(cfg, d.device)
        self.denoiser = Denoiser(self.teacher.net, self.teacher.process)
        self.model = copy.deepcopy(self.teacher.net).train().requires_grad_(True)
        if cfg.run.init_from:  # continue from a committed student (stage by stage)
            from tadsr.train.teacher import init_weights

            init_weights(self.model, cfg.run.init_from)
        self.disc: PixelDiscriminator | TimeAwareDiscriminator
        if cfg.disc_kind == "pixel":  # reads the decoded image: as many channels as it has
            codec = self.teacher.codec
            image_channels = codec.decode(torch.zeros(1, codec.channels, 1, 1)).shape[1]
            self.disc = PixelDiscriminator(image_channels, energy_window=cfg.disc_energy)
            self.disc = self.disc.to(d.device)
        else:
            self.disc = TimeAwareDiscriminator(feature_channels(self.teacher.net.cfg)).to(d.device)
        self.disc_lr, self.disc_grad_clip = cfg.disc_lr, cfg.disc_grad_clip

    def state(self) -> dict:
        return {"disc": self.disc}

    def setup(self, d: Dist, log, run_dir: Path, wrap) -> None:
        cfg = self.cfg
        self.dnet = wrap(self.disc) if cfg.w_gan > 0 else self.disc
        self.feed, self.data, self.degradation = make_feed(cfg, d, self.teacher.scale)
        self.cache = None
        if cfg.teacher_cache > 0:
            path = Path(cfg.teacher_cache_file or run_dir / "teacher_cache.pt")
            self.cache = TeacherCache.build(
                path, cfg, self.teacher, self.data, self.degradation, d, log
            )

    def pretrain(self, d: Dist, log) -> Iterator[Loss]:
        """`disc_pretrain` discriminator-only losses against the initial student, on the
        data of steps 0, 1, ... with draws of their own stream (the loop steps each, on a
        fresh run only): the student's first adversarial gradients then come from a
        discriminator that tells real from fake."""
        if self.cfg.w_gan <= 0 or self.cfg.disc_pretrain <= 0:
            return
        process, t0 = self.teacher.process, time.time()
        self.model.eval()
        for k in range(self.cfg.disc_pretrain):
            for hr, lq, eps, _zt, _g in self.batches(k, d):
                g = step_generator(self.cfg.run.seed, k, 0, d.rank, "disc-pretrain")
                x0_gt, y = latents(self.teacher.codec, hr, lq, self.teacher.scale)
                with torch.no_grad():
                    x0_hat = Denoiser(self.model, process)(
                        process.prior_sample(y, eps), process.last_t, lq
                    )
                t_d, n_d = self.disc_draw(y, g)
                yield self.disc_loss(x0_gt, x0_hat, y, lq, t_d, n_d)
            if (k + 1) % 50 == 0 or k + 1 == self.cfg.disc_pretrain:
                log.event(f"discriminator pre-training: {k + 1}/{self.cfg.disc_pretrain} "
                          f"({time.time() - t0:.0f} s)")  # fmt: skip
        self.model.train()

    def batches(self, step: int, d: Dist):
        """(hr, lq, eps, z_teacher, generator) per micro-batch of this step and rank."""
        cfg, run, teacher = self.cfg, self.cfg.run, self.teacher
        if self.cache is not None:
            per = per_process(run.batch_size, run.grad_accum, d)
            for m in range(run.grad_accum):
                base = first_index(step, m, run.grad_accum, d, per)
                hr, lq, eps, zt = self.cache.batch(list(range(base, base + per)), d.device)
                yield hr, lq, eps, zt, step_generator(run.seed, step, m, d.rank)
            return
        for mb in self.feed.batches(step):
            x0, y = latents(teacher.codec, mb.hr, mb.lq, teacher.scale)
            eps = torch.randn(y.shape, generator=mb.generator).to(d.device)
            zt = x0  # a placeholder when no loss reads the teacher's sample
            if needs_teacher_sample(cfg):
                with torch.no_grad():
                    zt = teacher_target(teacher, cfg, mb.hr, mb.lq, eps, y)
            yield mb.hr, mb.lq, eps, zt, mb.generator

    def close(self) -> None:
        if getattr(self, "feed", None) is not None:  # set up (a bad corpus stops setup)
            self.feed.close()

    def loss(self, net, batch, amp) -> Iterator[Loss]:
        """L = w_reg L_reg + w_hfsd L_hfsd + w_gan L_G, yielded after the discriminator's
        loss(es) (`disc_steps` of them with the GAN on), each of which the loop steps before
        this resumes: L_G reads the updated discriminator."""
        cfg, process = self.cfg, self.teacher.process
        hr, lq, eps, z_teacher, g = batch
        x0_gt, y = latents(self.teacher.codec, hr, lq, self.teacher.scale)
        z = process.prior_sample(y, eps)
        with amp():
            x0_hat = Denoiser(net, process)(z, process.last_t, lq).float()
        terms = dict.fromkeys(("reg", "hfsd", "g", "d", "d_real", "d_fake"), 0.0)
        if cfg.w_gan > 0:  # discriminator first, on this micro-batch
            for _ in range(cfg.disc_steps):
                t_d, n_d = self.disc_draw(y, g)
                d_loss = self.disc_loss(x0_gt, x0_hat.detach(), y, lq, t_d, n_d)
                terms.update(d_loss.terms)
                yield d_loss
        target = x0_gt if cfg.reg_target == "hr" else z_teacher
        if cfg.reg_hf_weight == 1:
            l_reg = regression_loss(x0_hat, target, cfg.reg_norm)
        else:
            l_reg = split_regression_loss(
                x0_hat, target, self.teacher.codec.decode, cfg.reg_hf_weight, cfg.reg_hf_sigma
            )
        loss = cfg.w_reg * l_reg
        terms["reg"] = l_reg.item()
        if cfg.w_flat > 0:
            decode = self.teacher.codec.decode
            l_f = flat_area_loss(decode(x0_hat), decode(x0_gt), cfg.flat_tau)
            loss = loss + cfg.w_flat * l_f
            terms["flat"] = l_f.item()
        if cfg.w_hfsd > 0:
            ref = x0_gt if cfg.hfsd_reference == "hr" else z_teacher
            l_h = hfsd_loss(
                self.teacher.net, process, x0_hat, ref, y, lq, g, max_t=cfg.hfsd_max_t,
                reference=cfg.hfsd_reference, noise=cfg.hfsd_noise,
            )  # fmt: skip
            loss = loss + cfg.w_hfsd * l_h
            terms["hfsd"] = l_h.item()
        if cfg.w_gan > 0:
            self.disc.requires_grad_(False)
            feats = self.disc_inputs(process.q_sample(x0_hat, y, t_d, n_d), t_d, lq)
            l_g = g_hinge_loss(self.disc(feats, t_d))
            self.disc.requires_grad_(True)
            loss = loss + cfg.w_gan * l_g
            terms["g"] = l_g.item()
        yield Loss(loss, terms)

    def disc_draw(self, y, g):
        """(t_d, noise) for one discriminator update: t_d uniform over {0 .. T-2} (the paper)
        or over {0 .. disc_t_max - 1}; Gaussian noise, or the official code's U[0, 1)."""
        t_d = torch.randint(0, self.disc_t_count(), (y.shape[0],), generator=g).to(y.device)
        return t_d, disc_noise(self.cfg.disc_noise, y.shape, g).to(y.device)

    def disc_t_count(self) -> int:
        """How many t_d values the discriminator trains on: 0 .. count - 1."""
        last = self.teacher.process.last_t
        return max(min(self.cfg.disc_t_max, last) if self.cfg.disc_t_max else last, 1)

    def disc_inputs(self, x_t, t_d, lq) -> list:
        """What the discriminator reads at x_t: the teacher encoder's maps, or the decoded
        noisy image (`disc_kind: pixel`)."""
        if self.cfg.disc_kind == "pixel":
            return [self.teacher.codec.decode(x_t)]
        return self.denoiser.features(x_t, t_d, lq)

    def disc_loss(self, x0_gt, x0_fake, y, lq, t_d, n_d) -> Loss:
        """The discriminator's hinge loss at (t_d, n_d), for the loop to step ("disc")."""
        read = lambda x_t: self.disc_inputs(x_t, t_d, lq)  # noqa: E731
        dnet = getattr(self, "dnet", self.disc)  # the DDP-wrapped one once set up
        loss, real, fake = disc_loss(read, dnet, self.teacher.process, x0_gt, x0_fake, y, t_d, n_d)
        return Loss(loss, {"d": loss.item(), "d_real": real, "d_fake": fake}, "disc")

    def disc_update(self, opt, x0_gt, x0_fake, y, lq, t_d, n_d):
        """One update with `opt` outside a run (probes, benchmarks): (loss, real, fake)."""
        read = lambda x_t: self.disc_inputs(x_t, t_d, lq)  # noqa: E731
        return disc_update(read, self.disc, opt, self.teacher.process, x0_gt, x0_fake, y, t_d, n_d)

    def validate(self, ema_model, png: Path) -> dict:
        """PSNR-Y / SSIM-Y of validation pairs and, with the GAN on, the discriminator's
        held-out AUC per t_d next to the fixed Laplacian-energy detector (`disc_probe`)."""
        t = self.teacher
        metrics = validate(
            ema_model, t.codec, t.process, scale=t.scale, kind="student", data=self.cfg.data,
            png=png,
        )  # fmt: skip
        if self.cfg.w_gan > 0 and self.cfg.disc_probe > 0:
            metrics.update(probe_discriminator(self, ema_model, self.cfg.disc_probe))
        return metrics

    def export(self, ema_model, out: Path, step: int) -> Path:
        return export_student(ema_model, self.teacher, self.cfg, out, step)


def distill(cfg: DistillConfig, run_dir: str | Path, **kwargs) -> Path:
    """Distil (or resume) a one-step student; returns the exported EMA weights file.
    `kwargs`: resume, device, stop_after (see `train_loop`)."""
    return train_loop(cfg, run_dir, lambda d: DistillObjective(cfg, d), **kwargs)


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
                tensors: dict = {k: v[order] for k, v in merged.items()}
                _save_atomic({**tensors, "recipe": cache_recipe(cfg)}, path)
            d.barrier()
        tensors = torch.load(path, weights_only=True)
        made, want = tensors.pop("recipe", None), cache_recipe(cfg)
        if made is not None and made != want:  # caches from before the recipe carry none
            diff = ", ".join(f"{k} {made.get(k)!r}" for k in want if made.get(k) != want[k])
            raise ValueError(
                f"{path}: this teacher cache was made with {diff}; this run asks for "
                + ", ".join(f"{k} {want[k]!r}" for k in want if made.get(k) != want[k])
                + " (name another teacher_cache_file)"
            )
        return cls(tensors)

    def batch(self, indices: list[int], device):
        idx = torch.tensor([i % self.n for i in indices])
        return tuple(self.t[k][idx].to(device) for k in ("hr", "lq", "eps", "zt"))


def cache_recipe(cfg: DistillConfig) -> dict:
    """What makes a cached target mean what the run's regression expects. A cache may be
    reused across seeds and degradations on purpose (a stage on another run's samples), but a
    target sampled from another teacher input or step count would silently change the loss."""
    return {"teacher_input": cfg.teacher_input, "teacher_steps": cfg.teacher_steps}


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
        zt = teacher_target(teacher, cfg, hr.to(device), lq.to(device), eps.to(device))
    return {"index": torch.tensor(indices), "hr": hr, "lq": lq, "eps": eps, "zt": zt.cpu()}


def needs_teacher_sample(cfg: DistillConfig) -> bool:
    """Whether a loss reads the teacher's sample: without a cache, a faithful run
    (reg_target hr, HFSD off or on the HR reference) skips the teacher's T steps."""
    reg = cfg.w_reg > 0 and cfg.reg_target == "teacher"
    return reg or (cfg.w_hfsd > 0 and cfg.hfsd_reference == "teacher")


def teacher_target(teacher, cfg: DistillConfig, hr, lq, eps, y=None):
    """The regression target: the teacher's deterministic sample, over all T steps or
    (``cfg.teacher_steps``) respaced to fewer, from the student's own starting point (the
    student's LR ``lq``, its latent ``y`` when the caller has it, and noise ``eps``) or, with
    ``teacher_input: clean``, from the bicubic /scale of the HR crop ``hr`` with the same
    noise. Images in [-1, 1]."""
    if cfg.teacher_input == "clean":
        clean = BicubicDegradation(teacher.scale)((hr + 1) / 2)
        lq, y = (clean * 2 - 1).to(lq.dtype), None
    if y is None:
        y = lr_latent(teacher.codec, lq, teacher.scale)
    n = cfg.teacher_steps
    process = teacher.process if not n else teacher.process.respaced(n)
    return sample_deterministic(Denoiser(teacher.net, process), y, lq, noise=eps)


def _save_atomic(obj, path: Path) -> None:
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def disc_loss(read, dnet, process, x0_gt, x0_fake, y, t_d, n_d):
    """The discriminator's hinge loss on real = q(x0_gt), fake = q(x0_fake), both read by
    `read(x_t)` (the frozen teacher's encoder, or the decoded image). Returns (loss tensor,
    mean real logit, mean fake logit): the logged logits show whether the discriminator
    tells the two apart."""
    with torch.no_grad():
        f_real = read(process.q_sample(x0_gt, y, t_d, n_d))
        f_fake = read(process.q_sample(x0_fake, y, t_d, n_d))
    real, fake = dnet(f_real, t_d), dnet(f_fake, t_d)
    mean = lambda logits: float(all_logits(logits).detach().mean())  # noqa: E731
    return d_hinge_loss(real, fake), mean(real), mean(fake)


def disc_update(read, dnet, d_opt, process, x0_gt, x0_fake, y, t_d, n_d):
    """`disc_loss` and one step of `d_opt` on it, outside a run (tests, probes); returns
    (loss, mean real logit, mean fake logit) before the update."""
    loss, real, fake = disc_loss(read, dnet, process, x0_gt, x0_fake, y, t_d, n_d)
    d_opt.zero_grad(set_to_none=True)
    loss.backward()
    d_opt.step()
    return loss.item(), real, fake


def export_student(model, teacher, cfg: DistillConfig, out: Path, step: int) -> Path:
    from tadsr.checkpoints.io import save_model

    losses = {
        "reg": cfg.w_reg,
        "hfsd": cfg.w_hfsd,
        "gan": cfg.w_gan,
        "hfsd_reference": cfg.hfsd_reference,
        "hfsd_noise": cfg.hfsd_noise,
        "reg_target": cfg.reg_target,
        "reg_hf_weight": cfg.reg_hf_weight,
        "flat": cfg.w_flat,
        "teacher_input": cfg.teacher_input,
        "disc_kind": cfg.disc_kind,
        "disc_energy": cfg.disc_energy,
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
            "init_from": cfg.run.init_from,
            "data": cfg.data.root,
        },
    )


__all__ = ["distill"]
