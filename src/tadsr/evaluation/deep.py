"""Learned metrics (LPIPS, DISTS, CLIPIQA, MUSIQ, MANIQA) through pyiqa, only when offline-ready.

Their weights cannot be downloaded here, and nothing may download at run time; so a metric
is usable only when ``pyiqa`` imports and every weight file it needs is already in the
torch hub cache. Otherwise :func:`deep_status` explains what is missing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DeepMetric:
    """A pyiqa metric: its pyiqa name, whether it needs a reference, the weight files."""

    pyiqa_name: str
    full_reference: bool
    higher_better: bool
    files: tuple[str, ...]  # "pyiqa/NAME" (pyiqa cache), "checkpoints/NAME" (torch hub)


_LPIPS_FILES = ("pyiqa/LPIPS_v0.1_alex-df73285e.pth", "checkpoints/alexnet-owt-7be5be79.pth")
_DISTS_FILES = ("pyiqa/DISTS_weights-f5e65c96.pth", "checkpoints/vgg16-397923af.pth")
DEEP_METRICS: dict[str, DeepMetric] = {
    "lpips": DeepMetric("lpips", True, False, _LPIPS_FILES),
    "dists": DeepMetric("dists", True, False, _DISTS_FILES),
    "clipiqa": DeepMetric("clipiqa", False, True, ("pyiqa/RN50.pt",)),
    "musiq": DeepMetric("musiq", False, True, ("pyiqa/musiq_koniq_ckpt-e95806b9.pth",)),
    "maniqa": DeepMetric("maniqa", False, True, ("pyiqa/ckpt_koniq10k.pt",)),
}


def hub_dir() -> Path:
    """The torch hub cache directory ($TORCH_HOME/hub, default ~/.cache/torch/hub)."""
    import torch

    return Path(torch.hub.get_dir())


def deep_status(name: str) -> tuple[bool, str]:
    """(usable, message) for a learned metric; never downloads anything."""
    spec = DEEP_METRICS[name]
    root = hub_dir()
    needed = ", ".join(str(root / f) for f in spec.files)
    if importlib.util.find_spec("pyiqa") is None:
        return False, (
            f"{name.upper()} needs the pyiqa package and its weights in the torch hub cache "
            f"({needed}); pyiqa is not installed"
        )
    missing = [str(root / f) for f in spec.files if not (root / f).is_file()]
    if missing:
        return False, (
            f"{name.upper()} needs pyiqa with its weights in the torch hub cache; "
            f"not found: {', '.join(missing)}"
        )
    return True, f"{name.upper()} via pyiqa (weights in {root})"


def load_deep_metric(name: str, device: str = "cpu") -> Callable[..., float]:
    """A function (sr_uint8[, hr_uint8]) -> float for a usable learned metric.

    Raises RuntimeError with :func:`deep_status`'s message when it is not usable.
    """
    ok, message = deep_status(name)
    if not ok:
        raise RuntimeError(message)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pyiqa  # type: ignore[import-not-found]
    import torch

    spec = DEEP_METRICS[name]
    model = pyiqa.create_metric(spec.pyiqa_name, device=torch.device(device), as_loss=False)

    def to_tensor(img: np.ndarray) -> torch.Tensor:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float() / 255.0
        return t.to(device)

    def run(sr: np.ndarray, hr: np.ndarray | None = None) -> float:
        with torch.no_grad():
            if spec.full_reference:
                if hr is None:
                    raise ValueError(f"{name.upper()} compares with a reference: pass the HR image")
                return float(model(to_tensor(sr), to_tensor(hr)).item())
            return float(model(to_tensor(sr)).item())

    return run
