"""Image quality metrics and `tadsr eval` (names exported lazily: importing is cheap)."""

from __future__ import annotations

_EXPORTS = {
    "compute_metrics": "tadsr.evaluation.runner",
    "available_metrics": "tadsr.evaluation.metrics",
    "psnr_y": "tadsr.evaluation.fullref",
    "ssim_y": "tadsr.evaluation.fullref",
    "ms_ssim": "tadsr.evaluation.fullref",
    "niqe": "tadsr.evaluation.niqe",
    "brisque": "tadsr.evaluation.brisque",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tadsr.evaluation' has no attribute {name!r}")
