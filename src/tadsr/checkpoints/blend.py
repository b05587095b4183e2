"""Network interpolation for the fidelity dial (`tadsr.inference.fidelity`): two models of
one architecture blended weight by weight, w = (1 - F) w_realistic + F w_faithful.

`check_blendable` refuses a pair that differs in its tensors' names or shapes, codec,
schedule or scale, in one line naming both files and the first difference. `FidelityDial`
holds float32 copies of both weight sets and writes the blend for an F into the running
network in place (`torch.lerp`: F = 0 gives the realistic weights and F = 1 the faithful
ones exactly).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tadsr.checkpoints.errors import CheckpointError

__all__ = ["FidelityDial", "check_blendable"]


def _describe(model) -> dict:
    """What two blendable models must share, besides the network's tensors."""
    codec = model.codec.to_dict() if hasattr(model.codec, "to_dict") else type(model.codec)
    return {
        "scale": model.scale,
        "schedule": model.process.cfg.to_dict(),
        "codec": codec,
        "architecture": model.net.cfg.to_dict() if hasattr(model.net, "cfg") else None,
    }


def check_blendable(realistic, faithful) -> None:
    """CheckpointError (one line, both files named) unless the two `LoadedModel`s can be
    blended: the same tensor names and shapes, codec, schedule and scale."""
    where = f"{realistic.source} and fidelity endpoint {faithful.source}"
    a, b = realistic.net.state_dict(), faithful.net.state_dict()
    for name in sorted(a.keys() ^ b.keys()):
        holder = realistic.source if name in a else faithful.source
        raise CheckpointError(f"{where} cannot be blended: only {holder} has tensor {name!r}")
    for name, t in a.items():
        if t.shape != b[name].shape:
            raise CheckpointError(f"{where} cannot be blended: tensor {name!r} is "
                                  f"{tuple(t.shape)} against {tuple(b[name].shape)}")  # fmt: skip
    da, db = _describe(realistic), _describe(faithful)
    for key in da:
        if da[key] != db[key]:
            raise CheckpointError(f"{where} cannot be blended: their {key} differs "
                                  f"({_first_difference(da[key], db[key])})")  # fmt: skip


def _first_difference(a, b) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys(), key=str):
            if a.get(k) != b.get(k):
                return f"{k}: {a.get(k)!r} against {b.get(k)!r}"
    return f"{a!r} against {b!r}"


class FidelityDial:
    """Blends two weight sets of one architecture into `net` (`set(f)`; re-blending for the
    same f does nothing)."""

    def __init__(self, net: nn.Module, realistic: dict[str, Tensor], faithful: dict[str, Tensor]):
        self.net = net
        dev = next(net.parameters()).device
        self._pairs = {
            name: (realistic[name].detach().to(dev, torch.float32).clone(),
                   faithful[name].detach().to(dev, torch.float32))
            for name, t in net.state_dict().items()
            if t.is_floating_point()
        }  # fmt: skip
        self.value: float | None = None

    @torch.no_grad()
    def set(self, f: float) -> None:
        f = float(f)
        if f == self.value:
            return
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"fidelity must be from 0 to 1, got {f}")
        state = self.net.state_dict()
        for name, (w_real, w_faith) in self._pairs.items():
            state[name].copy_(torch.lerp(w_real, w_faith, f))
        self.value = f
