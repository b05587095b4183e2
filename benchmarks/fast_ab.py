"""Before / after figures of issue 13 (speed, start-up, memory), measured interleaved.

    git worktree add /tmp/wt-before 166c953          # the code before the change
    python benchmarks/fast_ab.py --before /tmp/wt-before/src \
        --photos /work/main/data/photo_val/lr_clean [--rounds 5] [--memory 2048] [--json F]

Each round runs, alternately (before then after, after then before), a fresh process per
side that upscales every photo of --photos as a user's `tadsr upscale` does (read PNG,
upscale with the bundled default model, write PNG; the model loaded once, a warm-up image
first) on --threads torch threads, and reports wall and CPU seconds per output megapixel of
the whole path minus start-up. The figure kept is the round minimum (the machine is shared:
the load average is printed with every round). It also compares the two sides' output
pixels (same seed, same noise) and times fresh `--help`, `models`, `info` and `upscale` of
an 8x8 image on both sides (and `--backend onnxruntime` after, when installed). --memory N
runs `tadsr upscale` on an N x N photo on each side under /usr/bin/time (peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

AFTER = Path(__file__).resolve().parents[1] / "src"

_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[1]))
from tadsr.inference.imageio import read_image, write_image
from tadsr.inference.upscaler import Upscaler
photos, out = [Path(p) for p in sys.argv[3].split(",")], Path(sys.argv[2])
up = Upscaler.from_pretrained(None, device="cpu")
up.upscale_picture(read_image(photos[0]))
wall = cpu = mp = 0.0
for p in photos:
    t, c = time.perf_counter(), time.process_time()
    res = up.upscale_picture(read_image(p))
    write_image(out / p.name, res)
    wall += time.perf_counter() - t
    cpu += time.process_time() - c
    mp += res.height * res.width / 1e6
print(json.dumps({"wall_s_per_mp": wall / mp, "cpu_s_per_mp": cpu / mp, "out_mp": mp}))
"""


def _env(src: Path, side: str = "after") -> dict:
    """The child's environment. OpenMP's wait policy as each side's `tadsr upscale` sets it:
    PASSIVE before (166c953 forced it for every command), OpenMP's default after (inference
    commands no longer force it); an OMP_WAIT_POLICY in this environment applies to both."""
    env = dict(os.environ, PYTHONPATH=str(src))
    if side == "before":
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_side(src: Path, photos: list[Path], out: Path, threads: int, side: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _CHILD, str(threads), str(out), ",".join(map(str, photos))]
    p = subprocess.run(cmd, env=_env(src, side), capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{src}: the child failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def startup(src: Path, argv: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "tadsr.cli", *argv], env=_env(src),
                           capture_output=True, text=True)  # fmt: skip
        if p.returncode:
            raise SystemExit(f"{src}: tadsr {' '.join(argv)} failed:\n{p.stderr[-2000:]}")
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss_mb(src: Path, image: Path, out: Path) -> tuple[float, float]:
    t = time.perf_counter()
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "tadsr.cli", "upscale",
           str(image), "-o", str(out), "-q", "--overwrite"]  # fmt: skip
    p = subprocess.run(cmd, env=_env(src), capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{src}: memory run failed:\n{p.stderr[-2000:]}")
    return int(p.stderr.strip().splitlines()[-1]) / 1024, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="src/ folder of the old code")
    ap.add_argument("--after", type=Path, default=AFTER, help="src/ of the new code (this one)")
    ap.add_argument("--photos", type=Path, required=True, help="folder of LR photos (PNG)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--startup-repeats", type=int, default=3)
    ap.add_argument("--memory", type=int, default=0, metavar="N", help="N x N memory run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    photos = sorted(args.photos.glob("*.png"))
    sides = {"before": args.before, "after": args.after}
    report: dict = {"photos": str(args.photos), "n_photos": len(photos), "threads": args.threads,
                    "rounds": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            row = {"load_before": _load()}
            for side in order:
                row[side] = run_side(sides[side], photos, tmp / side, args.threads, side)
            row["load_after"] = _load()
            report["rounds"].append(row)
            print(f"round {r + 1}: load {row['load_before']} -> {row['load_after']}; " + "; ".join(
                f"{s} {row[s]['wall_s_per_mp']:.3f} s/MP wall, {row[s]['cpu_s_per_mp']:.3f} CPU"
                for s in ("before", "after")), flush=True)  # fmt: skip
        diffs = {}
        for p in photos:
            a = np.asarray(Image.open(tmp / "before" / p.name), dtype=int)
            b = np.asarray(Image.open(tmp / "after" / p.name), dtype=int)
            diffs[p.name] = {"max": int(np.abs(a - b).max()), "mean": float(np.abs(a - b).mean())}
        report["pixel_diff_8bit"] = diffs
        for side in ("before", "after"):
            rounds = [row[side] for row in report["rounds"]]
            report[side] = {k: min(x[k] for x in rounds) for k in ("wall_s_per_mp", "cpu_s_per_mp")}
            report[side]["median_wall_s_per_mp"] = float(
                np.median([x["wall_s_per_mp"] for x in rounds])
            )
        tiny = tmp / "tiny.png"
        Image.new("RGB", (8, 8), (120, 80, 40)).save(tiny)
        bundled = args.after / "tadsr/models/tadsr-small.safetensors"
        cases = {
            "--help": ["--help"],
            "models": ["models"],
            "info": ["info", str(bundled)],
            "upscale 8x8": ["upscale", str(tiny), "-o", str(tmp / "s"), "-q", "--overwrite"],
        }
        report["startup_s"] = {"load": _load()}
        for name, argv in cases.items():
            for side in ("before", "after"):
                report["startup_s"][f"{name} ({side})"] = startup(
                    sides[side], argv, args.startup_repeats
                )
        try:
            import onnxruntime  # noqa: F401

            argv = cases["upscale 8x8"] + ["--backend", "onnxruntime"]
            startup(args.after, argv, 1)  # fills the export cache
            report["startup_s"]["upscale 8x8 --backend onnxruntime (after)"] = startup(
                args.after, argv, args.startup_repeats
            )
        except ImportError:
            pass
        if args.memory:
            big = tmp / "big.png"
            from skimage import data

            Image.fromarray(data.astronaut()).resize((args.memory, args.memory),
                                                     Image.BICUBIC).save(big)  # fmt: skip
            report["memory"] = {"input": f"{args.memory}x{args.memory}", "load": _load()}
            for side in ("before", "after"):
                mb, secs = peak_rss_mb(sides[side], big, tmp / f"m_{side}")
                report["memory"][side] = {"peak_rss_mb": mb, "wall_s": secs}
    print(json.dumps({k: v for k, v in report.items() if k != "rounds"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
