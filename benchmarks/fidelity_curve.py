"""The fidelity dial's curve: PSNR-Y against NIQE at F = 0, .25, .5, .75, 1 (and `auto`) on
the whole-photo validation set, each LR kind, with bicubic and the reference models as
points. Writes the rows as JSON and the plot as a PNG.

    python benchmarks/fidelity_curve.py [--model tadsr-small] [--kinds clean,real,heavy] \
        [--reference realesrgan-x4plus --reference dat-light-x4] \
        [--png docs/images/fidelity_curve.png] [--json docs/fidelity_curve.json]

F = 0 is the student, F = 1 its faithful endpoint (the registry's `fidelity_endpoint`, or
`--endpoint FILE`); every F runs as one network evaluation (weights blended at load).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_val import evaluate  # noqa: E402

FS = (0.0, 0.25, 0.5, 0.75, 1.0)


def whole_path_speed(model: str, fs: list[str], lr_dir: Path, rounds: int, threads: int) -> dict:
    """Seconds per output MP of the whole path (read PNG, upscale at F, write PNG) over every
    image of `lr_dir`, per F: the minimum over `rounds` rounds, the F values interleaved in
    each round so that other load on the machine touches them alike. Loading is not timed."""
    import tempfile
    import time

    import torch

    from tadsr import Upscaler
    from tadsr.inference.imageio import read_image, write_image

    torch.set_num_threads(threads)
    ups = {f: Upscaler.from_pretrained(model, fidelity=f, seed=0) for f in fs}
    files = sorted(lr_dir.glob("*.png"))
    best = {f: float("inf") for f in fs}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for f, up in ups.items():
                t0, mp = time.perf_counter(), 0.0
                for src in files:
                    out = up.upscale_picture(read_image(src))
                    write_image(Path(tmp) / src.name, out)
                    mp += out.color.shape[0] * out.color.shape[1] / 1e6
                best[f] = min(best[f], (time.perf_counter() - t0) / mp)
    return best


def plot(rows: list[dict], kinds: list[str], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        mine = [r for r in rows if r["kind"] == kind and r["method"].startswith("F=")]
        fixed = [r for r in mine if r["method"] != "F=auto"]
        ax.plot([r["niqe"] for r in fixed], [r["psnr"] for r in fixed], "o-", color="C0",
                label="tadsr-small, F = 0 .. 1")  # fmt: skip
        for r in mine:
            ax.annotate(r["method"][2:], (r["niqe"], r["psnr"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)  # fmt: skip
        for i, r in enumerate(x for x in rows if x["kind"] == kind and "=" not in x["method"]):
            ax.plot(r["niqe"], r["psnr"], "s", color=f"C{i + 1}", label=r["method"])
        ax.set_title(f"{kind} LR (9 whole photos)")
        ax.set_xlabel("NIQE (lower = more natural)")
        ax.set_ylabel("PSNR-Y, dB (higher = more faithful)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--val", default="data/photo_val")
    ap.add_argument("--out", default="outputs/fidelity_curve")
    ap.add_argument("--model", default="tadsr-small")
    ap.add_argument("--kinds", default="clean,real,heavy")
    ap.add_argument("--reference", action="append", default=[])
    ap.add_argument("--auto", action="store_true", help="also F = auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--png", default="outputs/fidelity_curve/fidelity_curve.png")
    ap.add_argument("--json", default="outputs/fidelity_curve/fidelity_curve.json")
    ap.add_argument("--replot", action="store_true", help="only redraw --png from --json")
    ap.add_argument("--speed", type=int, default=0, metavar="ROUNDS",
                    help="only time the whole path per F on the clean LR (min over ROUNDS)")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    if args.speed:
        fs = [f"{f:g}" for f in FS] + ["auto"]
        got = whole_path_speed(args.model, fs, Path(args.val) / "lr_clean", args.speed,
                               args.threads)  # fmt: skip
        for f, v in got.items():
            print(f"F={f:5s} whole path {v:.3f} s per output MP ({args.threads} threads)")
        return
    if args.replot:
        plot(json.loads(Path(args.json).read_text())["rows"], kinds, Path(args.png))
        print(f"wrote {args.png}")
        return
    fs = [f"{f:g}" for f in FS] + (["auto"] if args.auto else [])
    methods = [(f"F={f}", f"{args.model}~{f}") for f in fs]
    rows = evaluate(Path(args.val), Path(args.out), methods, args.reference, tuple(kinds),
                    args.threads, grids=False)  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/fidelity_curve.py " + " ".join(sys.argv[1:])
    Path(args.json).write_text(json.dumps({"command": cmd.strip(), "rows": rows}, indent=1) + "\n")
    plot(rows, kinds, Path(args.png))
    print(f"wrote {args.json} and {args.png}")


if __name__ == "__main__":
    main()
