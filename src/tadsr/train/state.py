"""Full training state: everything with a state_dict, RNG states and the step, saved
atomically (temporary file, then rename) so that `--resume` continues exactly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tadsr.checkpoints.errors import CheckpointError
from tadsr.utils.files import atomic_write, one_line


def rng_state() -> dict:
    """The global generators as tensors (so the file loads with weights_only=True)."""
    state = np.random.get_state()  # legacy=True: the tuple form, not the dict
    assert isinstance(state, tuple)
    _, keys, pos, has_gauss, gauss = state
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


def save_state(path: Path, objects: dict[str, Any], step: int, config: dict) -> None:
    """objects: name -> object with state_dict(); written to path atomically."""
    payload = {name: obj.state_dict() for name, obj in objects.items() if obj is not None}
    payload.update(step=int(step), config=config, rng=rng_state())
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


def load_state(path: Path, objects: dict[str, Any], config: dict | None = None) -> dict:
    """Restore every object; returns the payload (step, config). A file that is not a
    training checkpoint, or one whose network does not fit (``config``: this run's, to name
    the settings that differ), is a one-line ValueError naming the file."""
    from tadsr.checkpoints.official import read_training_state

    try:
        payload = read_training_state(path)
    except CheckpointError as exc:
        raise ValueError(f"cannot resume: {exc}") from None
    for name, obj in objects.items():
        if obj is None:
            continue
        if name not in payload:
            if name == "scaler":  # runs saved before distillation had a loss scaler
                continue
            raise ValueError(f"{path}: checkpoint has no {name!r} state")
        try:
            obj.load_state_dict(payload[name])
        except (RuntimeError, ValueError, KeyError) as exc:
            diff = _differences(payload.get("config", {}), config or {})
            why = f"settings differ: {diff}" if diff else one_line(exc)
            raise ValueError(
                f"cannot resume from {path}: its {name} does not fit ({why})"
            ) from None
    set_rng_state(payload["rng"])
    return payload


def _differences(a: dict, b: dict, prefix: str = "") -> str:
    """The dotted settings whose values differ between two config dicts, network first."""
    found = _diff_list(a, b, prefix)
    found.sort(key=lambda item: not item.startswith("unet."))
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    return "; ".join(found[:4]) + more


def _diff_list(a: dict, b: dict, prefix: str) -> list[str]:
    out = []
    for k in sorted(set(a) & set(b)):
        if isinstance(a[k], dict) and isinstance(b[k], dict):
            out += _diff_list(a[k], b[k], f"{prefix}{k}.")
        elif a[k] != b[k] and not (isinstance(a[k], list | tuple) and list(a[k]) == list(b[k])):
            out.append(f"{prefix}{k} {a[k]!r} there, {b[k]!r} here")
    return out
