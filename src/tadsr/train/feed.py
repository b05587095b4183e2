"""The micro-batches of a run, made ahead of the step that needs them by DataLoader workers.

A micro-batch is a function of (seed, step, micro-batch, rank) alone: its crops are the
dataset's items at fixed indices and its degradation draws from `step_generator`. Which
process makes it therefore changes nothing, so a run gives the same weights with 0 or N
workers, and a resumed run restarts the stream at its first step. The generator's state after
the degradation travels with the batch: the loss goes on drawing from it exactly as if the
batch had been made in the training process.

`data.degrade_on: device` leaves the degradation to the training process, on the batch's
device (`tadsr.data.device_degradation`); the workers then only read crops.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset

from tadsr.train.batches import MicroBatch, first_index, per_process, step_generator
from tadsr.train.distributed import Dist

if TYPE_CHECKING:
    from tadsr.data.datasets import CropDataset
    from tadsr.data.degradation import Degradation


@dataclass(frozen=True)
class _Failed:
    """A worker's one-line error (bad data), raised again in the training process."""

    message: str


class StepData(Dataset):
    """Key ``step * accum + m`` -> (HR crops, LR or None, generator state) of one rank."""

    def __init__(self, crops, degradation, *, per: int, accum: int, rank: int, world: int,
                 seed: int, degrade: bool) -> None:  # fmt: skip
        self.crops, self.degradation, self.degrade = crops, degradation, degrade
        self.per, self.accum, self.rank, self.world, self.seed = per, accum, rank, world, seed

    def __len__(self) -> int:  # keys are unbounded; DataLoader reads them from the sampler
        return 2**62

    def __getitem__(self, key: int):
        step, m = divmod(int(key), self.accum)
        d = Dist(rank=self.rank, world=self.world)
        base = first_index(step, m, self.accum, d, self.per)
        try:
            with one_thread():
                hr = torch.stack([self.crops[(base + i) % len(self.crops)]
                                  for i in range(self.per)])  # fmt: skip
                g = step_generator(self.seed, step, m, self.rank)
                with torch.no_grad():
                    lr = self.degradation(hr, g) if self.degrade else None
        except (ValueError, OSError) as exc:  # a bad file: named in one line, no traceback
            return _Failed(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        return hr, lr, g.get_state()


@contextlib.contextmanager
def one_thread():
    """Crops and degradation on one CPU thread, as in a worker process: some CPU kernels
    (bilinear resizing) round differently with more threads, and a micro-batch must not
    depend on where it was made."""
    n = torch.get_num_threads()
    if n != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n != 1:
            torch.set_num_threads(n)


class Feed:
    """This rank's micro-batches, step after step, from `workers` processes (0: made here)."""

    def __init__(self, crops, degradation, cfg, d: Dist, device_degradation=None) -> None:
        run, data = cfg.run, cfg.data
        self.d, self.accum, self.seed = d, run.grad_accum, run.seed
        self.workers, self.prefetch = int(data.workers), int(data.prefetch)
        self.device_degradation = device_degradation  # None: degraded with the crops
        self.data = StepData(
            crops, degradation, per=per_process(run.batch_size, run.grad_accum, d),
            accum=run.grad_accum, rank=d.rank, world=d.world, seed=run.seed,
            degrade=device_degradation is None,
        )  # fmt: skip
        self._it: Iterator[object] | None = None  # the running stream of the workers
        self._next: int | None = None  # the step it yields next

    def batches(self, step: int):
        """The micro-batches of `step` (any step: the stream restarts where asked)."""
        if self.workers == 0:
            items = (self.data[step * self.accum + m] for m in range(self.accum))
        else:
            if self._it is None or self._next != step:
                self._it = self._start(step)
            it = self._it
            items = (next(it) for _ in range(self.accum))
            self._next = step + 1
        for m, item in enumerate(items):
            yield self._micro_batch(item, step, m)

    def _start(self, step: int) -> Iterator[object]:
        self.close()
        loader = DataLoader(
            self.data,
            batch_size=None,
            sampler=itertools.count(step * self.accum),
            num_workers=self.workers,
            prefetch_factor=self.prefetch,
            pin_memory=self.d.device.type == "cuda",
            # the loader seeds its workers from this generator, not from torch's global one,
            # whose state the checkpoint keeps
            generator=torch.Generator().manual_seed(0),
        )
        return iter(loader)

    def _micro_batch(self, item, step: int, m: int) -> MicroBatch:
        if isinstance(item, _Failed):
            raise ValueError(item.message)
        hr, lr, state = item
        g = torch.Generator()
        g.set_state(state)
        dev = self.d.device
        hr = hr.to(dev, non_blocking=True)
        if lr is None:
            with torch.no_grad():
                lr = self.device_degradation(hr, g)
        lr = lr.to(dev, non_blocking=True)
        return MicroBatch(hr=hr * 2 - 1, lq=lr * 2 - 1, generator=g)

    def close(self) -> None:
        """Stop the worker processes (a finished or restarted stream)."""
        it, self._it, self._next = self._it, None, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()


def make_feed(cfg, d: Dist, scale: int) -> tuple[Feed, CropDataset, Degradation]:
    """(feed, crops, degradation) of a run's config: `data.workers`, `data.prefetch` and
    `data.degrade_on` (cpu: in the workers, the exact reference; device: on d.device)."""
    from tadsr.data.degradation import build_degradation
    from tadsr.train.batches import training_crops

    crops = training_crops(cfg)
    degradation = build_degradation(cfg.data.degradation, scale=scale)
    on_device = None
    if cfg.data.degrade_on == "device":
        on_device = build_degradation(cfg.data.degradation, scale=scale, on_device=True)
    return Feed(crops, degradation, cfg, d, on_device), crops, degradation
