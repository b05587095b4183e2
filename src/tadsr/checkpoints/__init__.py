"""Checkpoints: one road in for every model file (`load`), our safetensors format (`io`),
official ResShift / SinSR / TAD-SR files (`official`) (`tadsr info`: `tadsr.commands.info`).

`load` and `LoadedModel` are imported on first use, so that `tadsr info` and the error type
stay free of torch at start-up.
"""

from __future__ import annotations

from typing import Any

from tadsr.checkpoints.errors import CheckpointError

__all__ = ["CheckpointError", "LoadedModel", "load"]


def __getattr__(name: str) -> Any:
    if name in ("LoadedModel", "load"):
        from tadsr.checkpoints import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'tadsr.checkpoints' has no attribute {name!r}")
