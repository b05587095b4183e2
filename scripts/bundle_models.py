"""Copy a trained teacher and student into the package as the bundled models and write
src/tadsr/models/registry.json (measured figures are added by benchmarks/model_card.py).

    python scripts/bundle_models.py --teacher runs/teacher-small/model.safetensors \
        --student runs/student-small/model.safetensors [--faithful runs/faithful/model.safetensors]

--faithful bundles the fidelity dial's F = 1 end as `tadsr-small-faithful` and names it as
the student's `fidelity_endpoint`. Any of the three may be left out to keep the bundled file.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tadsr.checkpoints.io import load_model_file, read_metadata

MODELS = Path(__file__).resolve().parents[1] / "src" / "tadsr" / "models"

DESCRIPTIONS = {
    "tadsr-small": "TAD-SR one-step student (x4), distilled here from tadsr-small-teacher "
    "(target: its 4-step deterministic sampling), then five realism stages of regression + the "
    "pixel discriminator, the last two towards the teacher's sample of the clean LR",
    "tadsr-small-teacher": "ResShift teacher (x4, 15 steps), trained here on the photo corpus "
    "with clean, mild and heavy LR",
    "tadsr-small-faithful": "faithful one-step endpoint of the fidelity dial (x4): the teacher "
    "fine-tuned at t = T-1 by regression to the HR latent, the last three stages on inputs "
    "with noise and JPEG on the LR grid (lr_noise)",
}


def portable(value):
    """Provenance without this machine's folders: an absolute path that passes through a
    `data` or `runs` folder is written from that folder on (/work/main/data/photos ->
    data/photos), in nested entries too (an averaged model lists its sources)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        parts = Path(value).parts
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] in ("data", "runs"):
                return str(Path(*parts[i:]))
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--teacher")
    ap.add_argument("--student")
    ap.add_argument("--faithful")
    args = ap.parse_args()
    reg_path = MODELS / "registry.json"
    registry = json.loads(reg_path.read_text()) if reg_path.is_file() else {}
    chosen = (
        ("tadsr-small", args.student),
        ("tadsr-small-teacher", args.teacher),
        ("tadsr-small-faithful", args.faithful),
    )
    for name, src in ((n, s) for n, s in chosen if s):
        meta = read_metadata(src)
        _, unet, _ = load_model_file(src)
        dst = MODELS / f"{name}.safetensors"
        shutil.copyfile(src, dst)
        entry = registry.get(name, {})
        entry.update(
            file=dst.name,
            kind={"sr_student": "student", "sr_teacher": "teacher"}[meta["kind"]],
            steps=meta["steps"],
            scale=meta["scale"],
            parameters=sum(p.numel() for p in unet.parameters()),
            description=DESCRIPTIONS[name],
            provenance=portable(meta.get("provenance", {})),
        )
        registry[name] = entry
        if name == "tadsr-small-faithful":
            registry.setdefault("tadsr-small", {})["fidelity_endpoint"] = name
        print(f"bundled {src} as {dst.name} ({dst.stat().st_size / 1e6:.2f} MB)")
    reg_path.write_text(json.dumps(registry, indent=2) + "\n")


if __name__ == "__main__":
    main()
