"""The one training loop (after EDM's `training_loop`): data, optimisation, mixed precision
with a loss scaler for fp16, gradient accumulation, DDP, EMA, a NaN check on every loss
term, checkpoints, exact resume, validation and logging. What is trained, and on which
loss, is an `Objective`: the teacher's x0 regression (`train.teacher`) or the TAD-SR
distillation (`train.distill`).

A step: for each micro-batch, `objective.loss(net, batch, amp)` yields `Loss`es: a
discriminator's ("disc", if the objective has one) are stepped at once by the loop's second
optimiser (NaN check, clip, step, schedule, logged norm), before the objective goes on; the
model's, last, is backpropagated through the scaler (DDP syncs on the last micro-batch only);
then unscale, clip, optimiser and lr steps, EMA update; every term must be finite; log,
checkpoint, validate. Objectives compute losses and step nothing (as EDM's loss classes).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from tadsr.train import distributed
from tadsr.train.distributed import Dist
from tadsr.train.ema import EMA
from tadsr.train.optim import (
    adamw,
    autocast_for,
    disc_adamw,
    finite_or_raise,
    grad_norm,
    lr_lambda,
)
from tadsr.train.runlog import RunLog
from tadsr.train.state import load_state, save_state
from tadsr.utils.config import to_dict
from tadsr.utils.files import remove_stale_temporaries


class Loss(NamedTuple):
    """A loss an objective yields: the tensor to backpropagate, the named terms to log, and
    the optimiser it is for: "model" (the objective's last loss of a micro-batch, accumulated
    over the step's micro-batches) or "disc" (its discriminator's: stepped at once)."""

    loss: Tensor
    terms: dict[str, float]
    target: str = "model"


class Objective(Protocol):
    """What a run trains and on which loss."""

    model: nn.Module  # the network the optimiser updates (on the run's device)

    def state(self) -> dict[str, Any]:
        """More objects saved and restored with the run (e.g. a discriminator). An objective
        with a discriminator also has `disc` (the module), `disc_lr`, `disc_grad_clip` and
        `pretrain(d, log)` (its "disc" losses before the first step of a fresh run)."""

    def setup(self, d: Dist, log: RunLog, run_dir: Path, wrap: Callable) -> None:
        """Once restored: wrap extra modules for DDP, build data, caches."""

    def batches(self, step: int, d: Dist) -> Iterable[Any]:
        """The micro-batches of `step` for this process."""

    def loss(self, net: nn.Module, batch: Any, amp: Callable) -> Iterator[Loss]:
        """The micro-batch's losses: any "disc" ones, then the model's (whose terms are
        logged); `net` is the DDP-wrapped model and `amp()` the mixed-precision context
        for its forward pass."""

    def validate(self, ema_model: nn.Module, png: Path) -> dict[str, float]: ...

    def export(self, ema_model: nn.Module, out: Path, step: int) -> Path: ...


def config_json(cfg) -> dict:
    return json.loads(json.dumps(to_dict(cfg)))


def train_loop(
    cfg,
    run_dir: str | Path,
    make_objective: Callable[[Dist], Objective],
    *,
    resume: bool = False,
    device: str = "auto",
    stop_after: int | None = None,
) -> Path:
    """Train (or resume) a run; returns the exported EMA weights file.

    `stop_after` ends the process after that many steps of this call (as a kill would),
    leaving the last checkpoint (the returned path); used to test exact resumption.
    """
    run_dir, run = Path(run_dir), cfg.run
    d = distributed.setup(device)
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    obj = make_objective(d)
    model = obj.model
    ema = EMA(model, run.ema)
    opt = adamw(model.parameters(), cfg.optim)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.optim.warmup, cfg.optim.decay_from, run.iterations)
    )
    scaler = torch.amp.GradScaler(enabled=run.mixed_precision == "fp16")
    objects = {"model": model, "ema": ema, "opt": opt, "sched": sched, **obj.state()}
    disc = DiscOptimiser.of(obj)
    if disc is not None:  # saved under the key it always had
        objects["disc_opt"] = disc.opt
    objects["scaler"] = scaler
    ckpt = run_dir / "checkpoints" / "last.pt"
    remove_stale_temporaries(ckpt.parent)  # a half-written checkpoint of a killed run
    start = 0
    if resume and ckpt.is_file():
        start = int(load_state(ckpt, objects, config_json(cfg))["step"])
    ids = [d.device.index] if d.device.type == "cuda" else None
    wrap = (lambda m: DDP(m, device_ids=ids)) if d.enabled else (lambda m: m)
    net = wrap(model)
    log = RunLog(run_dir, cfg, d, run.iterations, start)
    try:
        if start:
            log.event(f"resumed from {ckpt} at step {start}")
        obj.setup(d, log, run_dir, wrap)
        if disc is not None and not disc.opt.state:  # a fresh run: D's pre-training
            for item in obj.pretrain(d, log):  # type: ignore[attr-defined]
                disc.step(item, 0)
        state = RunState(cfg, d, log, ckpt, objects, obj, ema, start, stop_after)
        step = start
        while step < run.iterations:
            stats = _accumulate(obj, net, step, d, cfg, scaler, disc)
            scaler.unscale_(opt)
            gnorm = grad_norm(model.parameters(), cfg.optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
            ema.update(model)
            step += 1
            log.advance()
            for name, value in stats.items():  # every loss term, not only the total
                finite_or_raise(value, step, name)
            values = {**stats, "grad_norm": float(gnorm), "lr": float(opt.param_groups[0]["lr"])}
            if disc is not None:
                values.update(disc.summary())
            if _after_step(step, values, state):
                return ckpt
        out = run_dir / "model.safetensors"
        if d.main:
            obj.export(ema.model, out, step)
            log.event(f"exported EMA weights to {out}")
            if run.val_every:  # the curves are drawn with each validation, and at the end
                log.curves()
        d.barrier()
        return out
    finally:
        if hasattr(obj, "close"):  # the data workers
            obj.close()
        log.close()
        distributed.teardown(d)


@dataclass
class RunState:
    """What the bookkeeping after a step reads: the run's fixed parts."""

    cfg: Any
    d: Dist
    log: RunLog
    ckpt: Path
    objects: dict[str, Any]
    obj: Objective
    ema: EMA
    start: int
    stop_after: int | None


@dataclass
class DiscOptimiser:
    """The loop's optimiser of an objective's discriminator: each "disc" loss is checked
    for NaN, backpropagated, clipped to `clip` (0: not clipped, TAD-SR's default; the norm
    is logged either way), stepped and scheduled (a constant LR: `disc_lr`) at once."""

    disc: nn.Module
    opt: torch.optim.Optimizer
    clip: float = 0.0
    sched: Any = None
    norms: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, obj: Objective) -> DiscOptimiser | None:
        disc = getattr(obj, "disc", None)
        if disc is None:
            return None
        opt = disc_adamw(disc.parameters(), obj.disc_lr)  # type: ignore[attr-defined]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _step: 1.0)
        return cls(disc, opt, float(getattr(obj, "disc_grad_clip", 0.0)), sched)

    def step(self, item: Loss, step: int) -> None:
        finite_or_raise(float(item.loss.detach()), step, "d")
        self.opt.zero_grad(set_to_none=True)
        item.loss.backward()
        self.norms.append(float(grad_norm(self.disc.parameters(), self.clip)))
        self.opt.step()
        self.sched.step()

    def summary(self) -> dict[str, float]:
        """The step's mean discriminator gradient norm and its LR (nothing without updates)."""
        if not self.norms:
            return {}
        out = {"d_grad_norm": sum(self.norms) / len(self.norms)}
        self.norms.clear()
        return out | {"d_lr": float(self.opt.param_groups[0]["lr"])}


def _accumulate(
    obj: Objective, net, step: int, d: Dist, cfg, scaler, disc: DiscOptimiser | None = None
) -> dict[str, float]:
    """Forward and backward over the step's micro-batches, stepping the discriminator on
    each of its losses as they come; the mean of each logged term."""
    accum = cfg.run.grad_accum
    amp = lambda: autocast_for(cfg.run.mixed_precision, d.device)  # noqa: E731
    stats: dict[str, float] = {}
    obj.model.train()
    for m, batch in enumerate(obj.batches(step, d)):
        last = m == accum - 1 or not d.enabled
        with contextlib.nullcontext() if last else net.no_sync():
            terms: dict[str, float] = {}
            for item in obj.loss(net, batch, amp):
                if item.target == "disc":
                    assert disc is not None, "a discriminator's loss from an objective without one"
                    disc.step(item, step + 1)
                else:
                    scaler.scale(item.loss / accum).backward()
                    terms = item.terms
        for name, value in terms.items():
            stats[name] = stats.get(name, 0.0) + value / accum
    return stats


def _after_step(step: int, values: dict, s: RunState) -> bool:
    """The bookkeeping after an optimiser step: log, checkpoint (rank 0, atomically),
    validate with the EMA weights, and say whether to stop here (stop_after: as a kill
    would, leaving the checkpoint of this step). Returns True to stop."""
    cfg, d, log, run = s.cfg, s.d, s.log, s.cfg.run
    last = step == run.iterations
    stop = s.stop_after is not None and step - s.start >= s.stop_after
    if step % run.log_every == 0 or last:
        log.step(step, {k: d.mean(v) if isinstance(v, float) else v for k, v in values.items()})
    if step % run.save_every == 0 or last or stop:
        if d.main:
            save_state(s.ckpt, s.objects, step, config_json(cfg))
        d.barrier()
    if run.val_every and step % run.val_every == 0 and d.main and not stop:
        metrics = s.obj.validate(s.ema.model, log.run_dir / "samples" / f"step{step:07d}.png")
        log.step(step, metrics, "val.csv")
        log.event(f"step {step}: validation {metrics}")
        log.curves()
    return stop
