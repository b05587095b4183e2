"""The model card's table: bicubic, the teacher (15 steps), the regression-only student and
the TAD-SR student on the validation pairs: PSNR-Y, SSIM-Y, NIQE, BRISQUE, network
evaluations and seconds per image. Writes docs/model_card_results.json, the table in
docs/MODEL_CARD.md (between the RESULTS markers) and the figures in the model registry.

    python benchmarks/model_card.py --regression runs/student-small-reg/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tadsr.data.datasets import PairedFolderDataset
from tadsr.evaluation.runner import compute_metrics
from tadsr.inference.pipeline import SRPipeline
from tadsr.models import HERE as MODELS

ROOT = Path(__file__).resolve().parents[1]


def _save(img: torch.Tensor, path: Path) -> None:
    x = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(x).save(path)


def run_method(name, fn, ds, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    times = []
    for i in range(len(ds)):
        lr, _, stem = ds[i]
        t0 = time.perf_counter()
        sr = fn(lr[None] * 2 - 1, i)
        times.append(time.perf_counter() - t0)
        _save(sr[0], out_dir / f"{stem}.png")
    return {"seconds_per_image": float(np.median(times))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", default="data/val_pairs")
    ap.add_argument("--student", default="tadsr-small")
    ap.add_argument("--teacher", default="tadsr-small-teacher")
    ap.add_argument("--regression", help="regression-only student (the ablation)")
    ap.add_argument("--out", default="outputs/model_card")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--teacher-steps",
        default="15,4",
        help="comma-separated step counts for the teacher (15 = full; fewer by respacing)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pairs = Path(args.pairs)
    ds = PairedFolderDataset(pairs / "lr", pairs / "hr")
    out = Path(args.out)

    def bicubic(lq, i):
        return F.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False)

    methods = [("bicubic", bicubic, 0)]
    teacher = SRPipeline.from_pretrained(args.teacher)
    for n in (int(v) for v in args.teacher_steps.split(",")):
        methods.append((f"teacher ({n} steps)", _runner(teacher, args.seed, n), n))
    for label, model in (
        ("student, regression only", args.regression),
        ("student, TAD-SR (reg + HFSD + GAN)", args.student),
    ):
        if model is None:
            continue
        pipe = SRPipeline.from_pretrained(model)
        methods.append((label, _runner(pipe, args.seed), pipe.default_steps))
    rows = []
    for label, fn, evals in methods:
        slug = (
            label.split(" ")[0]
            if label == "bicubic"
            else label.replace(" ", "_")
            .replace(",", "")
            .replace("(", "")
            .replace(")", "")
            .replace("+", "")
        )
        timing = run_method(label, fn, ds, out / slug)
        m = compute_metrics(out / slug, pairs / "hr", ["psnr", "ssim", "niqe", "brisque"])
        rows.append({"method": label, "network_evaluations": evals, **timing, **m["mean"]})
        print(rows[-1], flush=True)
    result = {
        "pairs": str(pairs),
        "count": len(ds),
        "threads": args.threads,
        "cpu": os.uname().machine,
        "torch": torch.__version__,
        "rows": rows,
        "command": "python benchmarks/model_card.py"
        + (f" --regression {args.regression}" if args.regression else ""),
    }
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "model_card_results.json").write_text(json.dumps(result, indent=2) + "\n")
    _write_table(result)
    _update_registry(rows)


def _runner(pipe: SRPipeline, seed: int, steps: int | None = None):
    def fn(lq, i):
        return pipe(lq, generator=torch.Generator().manual_seed(seed + i), steps=steps)

    return fn


def _write_table(result: dict) -> None:
    lines = [
        "| method | PSNR-Y | SSIM-Y | NIQE | BRISQUE | network evals | s / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['niqe']:.3f} | "
            f"{r['brisque']:.2f} | {r['network_evaluations']} | "
            f"{r['seconds_per_image']:.3f} |"
        )
    table = "\n".join(lines)
    card = ROOT / "docs" / "MODEL_CARD.md"
    text = card.read_text() if card.is_file() else "<!-- RESULTS -->\n<!-- /RESULTS -->\n"
    start, end = text.index("<!-- RESULTS -->"), text.index("<!-- /RESULTS -->")
    text = text[:start] + "<!-- RESULTS -->\n" + table + "\n" + text[end:]
    card.write_text(text)
    print(table)


def _update_registry(rows: list[dict]) -> None:
    reg_path = MODELS / "registry.json"
    if not reg_path.is_file():
        return
    reg = json.loads(reg_path.read_text())
    pick = {"tadsr-small": "student, TAD-SR", "tadsr-small-teacher": "teacher"}
    for name, prefix in pick.items():
        row = next((r for r in rows if r["method"].startswith(prefix)), None)
        if name in reg and row is not None:
            reg[name]["metrics"] = {
                k: round(row[k], 4)
                for k in ("psnr", "ssim", "niqe", "brisque", "seconds_per_image")
            }
            reg[name]["measured_on"] = "data/val_pairs (28 Real-ESRGAN-degraded 64->256 crops)"
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")


if __name__ == "__main__":
    main()
