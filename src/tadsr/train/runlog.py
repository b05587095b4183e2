"""What a run leaves for people to look at (rank 0 writes): `log.csv` (training terms),
`val.csv` (validation), `events.txt`, the resolved `config.json`, a progress bar,
`curves.png` (loss terms, lr and validation metrics against step, redrawn at each validation
and at the end of a run that validates; needs matplotlib, the `curves` extra) and
TensorBoard events in `tb/` when `tensorboard` is installed (the `tensorboard` extra)."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

from tadsr.train.config import dump
from tadsr.train.distributed import Dist
from tadsr.utils.files import atomic_write


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep the rows of a CSV log up to ``step``: a run killed after its last checkpoint
    logged steps that the resumed run does again."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= step]
    if len(keep) != len(lines):
        with atomic_write(path) as tmp:
            tmp.write_text("".join(keep))


def _tensorboard(run_dir: Path, start: int):
    """A SummaryWriter when tensorboard is installed (None otherwise)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=start + 1 if start else None)


class RunLog:
    """CSV logs, events, curves and TensorBoard (rank 0), a progress bar with loss and ETA."""

    def __init__(self, run_dir: Path, cfg, d: Dist, total: int, start: int):
        self.d = d
        self.run_dir = run_dir
        self.t0 = time.time()
        self.start = start
        self.total = total
        self.bar = self.tb = None
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
            self.tb = _tensorboard(run_dir, start)

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
        numbers = {k: v for k, v in values.items() if isinstance(v, float)}
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in numbers.items()}, refresh=False)
        if self.tb is not None:
            group = "train" if file == "log.csv" else "val"
            for k, v in numbers.items():
                self.tb.add_scalar(f"{group}/{k}", v, step)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def event(self, text: str) -> None:
        if self.d.main:
            msg = f"[{time.strftime('%H:%M:%S')}] {text}"
            (self.bar.write if self.bar is not None else print)(msg)
            with (self.run_dir / "events.txt").open("a") as f:
                f.write(msg + "\n")

    def curves(self) -> Path | None:
        """Redraw curves.png from the CSV logs (None without matplotlib or before any row)."""
        if not self.d.main:
            return None
        from tadsr.train.curves import plot_curves

        return plot_curves(self.run_dir)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
