"""Full training state: everything with a state_dict, RNG states and the step, saved
atomically (temporary file, then rename) so that `--resume` continues exactly."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict:
    """The global generators as tensors (so the file loads with weights_only=True)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_rest": torch.tensor([pos, has_gauss, gauss], dtype=torch.float64),
        "python": torch.tensor(list(random.getstate()[1]), dtype=torch.int64),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    pos, has_gauss, gauss = state["numpy_rest"].tolist()
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), float(gauss)))
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))


def save_state(
    path: Path, objects: dict[str, Any], step: int, config: dict, extra: dict | None = None
) -> None:
    """objects: name -> object with state_dict(); written to path atomically."""
    payload = {name: obj.state_dict() for name, obj in objects.items() if obj is not None}
    payload.update(step=int(step), config=config, rng=rng_state(), extra=extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_state(path: Path, objects: dict[str, Any]) -> dict:
    """Restore every object; returns the payload (step, config, extra)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for name, obj in objects.items():
        if obj is None:
            continue
        if name not in payload:
            raise ValueError(f"{path}: checkpoint has no {name!r} state")
        obj.load_state_dict(payload[name])
    set_rng_state(payload["rng"])
    return payload
