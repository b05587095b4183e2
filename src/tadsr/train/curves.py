"""`curves.png` of a run folder: every training term of `log.csv` (loss terms, grad norm,
lr) and every metric of `val.csv` against step, one small panel each (matplotlib, the
`curves` extra; without it there is no picture and the CSV files say the same)."""

from __future__ import annotations

import csv
from pathlib import Path

from tadsr.utils.files import atomic_write

_NOT_PLOTTED = {"step", "time_s", "s_per_step"}


def _columns(path: Path) -> dict[str, list[tuple[int, float]]]:
    """column -> [(step, value)] of a CSV log (missing or empty cells skipped)."""
    out: dict[str, list[tuple[int, float]]] = {}
    if not path.is_file():
        return out
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k in _NOT_PLOTTED or k is None or v in (None, ""):
                    continue
                try:
                    out.setdefault(k, []).append((int(row["step"]), float(v)))
                except ValueError:
                    continue
    return out


def plot_curves(run_dir: Path) -> Path | None:
    """Write run_dir/curves.png atomically; None when matplotlib is missing or nothing is
    logged yet."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series = [("train", k, v) for k, v in _columns(run_dir / "log.csv").items()]
    series += [("validation", k, v) for k, v in _columns(run_dir / "val.csv").items()]
    if not series:
        return None
    cols = min(4, len(series))
    rows = -(-len(series) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat[len(series) :]:
        ax.axis("off")
    for ax, (group, name, points) in zip(axes.flat, series):
        steps, values = zip(*points)
        ax.plot(steps, values, marker="o" if len(points) < 20 else None, lw=1)
        ax.set_title(f"{name} ({group})", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if min(values) > 0 and (name == "lr" or max(values) / min(values) > 100):
            ax.set_yscale("log")
    # fixed margins: tight_layout doubles the time of a redraw
    fig.subplots_adjust(
        left=0.07, right=0.98, bottom=0.35 / rows, top=1 - 0.25 / rows, wspace=0.35, hspace=0.6
    )
    out = run_dir / "curves.png"
    with atomic_write(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return out
