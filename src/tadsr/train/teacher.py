"""Training the ResShift teacher (ResShift paper, arXiv 2307.12348): x0-prediction with MSE, t ~
U{0..T-1}.

x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps;   L = || f(x_t/c_t, t, lq) - x0 ||^2
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from torch import nn

from tadsr.checkpoints import CheckpointError
from tadsr.checkpoints.loading import codec_from_config
from tadsr.diffusion import Denoiser, Process
from tadsr.losses import teacher_loss
from tadsr.nets.unet import SwinUNet
from tadsr.train.batches import latents
from tadsr.train.config import TeacherConfig
from tadsr.train.distributed import Dist
from tadsr.train.feed import make_feed
from tadsr.train.loop import Loss, train_loop
from tadsr.train.validation import validate


class TeacherObjective:
    """The teacher's x0 regression at a uniformly drawn timestep."""

    def __init__(self, cfg: TeacherConfig, d: Dist, *, init: bool):
        self.cfg = cfg
        model = SwinUNet(cfg.unet)
        if cfg.run.init_from and init:
            init_weights(model, cfg.run.init_from)
        # typed as Objective declares it (a protocol attribute must match exactly)
        self.model: nn.Module = model.to(d.device)
        self.codec = codec_from_config(cfg.codec).to(d.device)
        self.process = Process(cfg.schedule)

    def state(self) -> dict:
        return {}

    def setup(self, d: Dist, log, run_dir: Path, wrap) -> None:
        self.feed, self.data, self.degradation = make_feed(self.cfg, d, self.cfg.scale)

    def batches(self, step: int, d: Dist):
        return self.feed.batches(step)

    def close(self) -> None:
        if getattr(self, "feed", None) is not None:  # set up (a bad corpus stops setup)
            self.feed.close()

    def loss(self, net, mb, amp) -> Iterator[Loss]:
        x0, y = latents(self.codec, mb.hr, mb.lq, self.cfg.scale)
        loss = teacher_loss(Denoiser(net, self.process), x0, y, mb.lq, mb.generator, amp)
        yield Loss(loss, {"loss": loss.item()})

    def validate(self, ema_model, png: Path) -> dict:
        cfg = self.cfg
        return validate(
            ema_model, self.codec, self.process, scale=cfg.scale, kind="teacher", data=cfg.data,
            png=png,
        )  # fmt: skip

    def export(self, ema_model, out: Path, step: int) -> Path:
        return export_teacher(ema_model, self.codec, self.cfg, out, step)


def train_teacher(
    cfg: TeacherConfig, run_dir: str | Path, *, resume: bool = False, **kwargs
) -> Path:
    """Train (or resume) a teacher; returns the exported EMA weights file. `kwargs`: device,
    stop_after (see `train_loop`)."""
    make = lambda d: TeacherObjective(cfg, d, init=not resume)  # noqa: E731
    return train_loop(cfg, run_dir, make, resume=resume, **kwargs)


def init_weights(model: SwinUNet, path: str) -> None:
    """Start from another model file's UNet weights; its network must be the same shape."""
    from tadsr.checkpoints import load

    try:
        model.load_state_dict(load(path).net.state_dict())
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
