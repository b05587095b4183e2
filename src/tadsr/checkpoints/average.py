"""Weight averaging of models of one lineage (a "model soup", Wortsman et al., arXiv
2203.05482; SWA, Izmailov et al., arXiv 1803.05407): w = mean of the models' weights.

The bundled `tadsr-small` is the mean of realism stages 5 and 6, two consecutive stages of one
run lineage (stage 6 starts from stage 5); docs/MODEL_CARD.md has the measurements. Models of
different architectures, codecs, schedules, scales or kinds are refused, naming both files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tadsr.checkpoints.errors import CheckpointError
from tadsr.checkpoints.io import load_model_file, save_model

# metadata that models must share to be averaged (the network's config, the latent, the
# diffusion schedule, the scale, the kind and its step count)
SHARED = ("unet", "codec", "schedule", "scale", "kind", "steps")


def average_models(paths: list[str | Path], out: str | Path) -> Path:
    """Write the mean of the models in `paths` (float32 sums, stored as fp16 like the
    bundled files) to `out`, atomically; its provenance lists each source's. Returns `out`."""
    if len(paths) < 2:
        raise ValueError("averaging needs at least two models")
    loaded = []
    for p in paths:
        meta, net, _ = load_model_file(p)
        if net is None:
            raise CheckpointError(f"{p}: holds no network to average")
        loaded.append((Path(p), meta, net))
    first, meta0, net0 = loaded[0]
    total = {k: v.double() for k, v in net0.state_dict().items()}
    for path, meta, net in loaded[1:]:
        for key in SHARED:
            if meta.get(key) != meta0.get(key):
                raise CheckpointError(f"{first} and {path} cannot be averaged: their {key} differs")
        # one UNet config (checked above) loads strictly into one set of tensor names and shapes
        for k, v in net.state_dict().items():
            total[k] += v.double()
    net0.load_state_dict({k: (v / len(loaded)).float() for k, v in total.items()})
    provenance: dict[str, Any] = {
        "trained_by": "weight average (tadsr.checkpoints.average)",
        "averaged": [{"file": str(path), **meta.get("provenance", {})} for path, meta, _ in loaded],
    }
    return save_model(
        out, unet=net0, unet_config=net0.cfg, codec=meta0["codec"], schedule=meta0["schedule"],
        kind=meta0["kind"], steps=meta0["steps"], scale=meta0["scale"], provenance=provenance,
    )  # fmt: skip
