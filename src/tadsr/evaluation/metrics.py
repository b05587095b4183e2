"""The metric registry: names, kinds, availability, and one callable per metric.

Classical metrics (numpy + scipy): ``psnr``, ``ssim``, ``ms_ssim`` (full reference, Y
channel, border cropped) and ``niqe``, ``brisque`` (no reference; BRISQUE only with its model
file, which is not shipped: see brisque.py). Learned
metrics ``lpips``, ``dists`` (full reference), ``clipiqa``, ``musiq``, ``maniqa`` (no
reference) run through pyiqa only when its weights are already on disk (see deep.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from tadsr.evaluation.brisque import HOW_TO_GET, brisque, find_model, load_svr
from tadsr.evaluation.deep import DEEP_METRICS, deep_status, load_deep_metric
from tadsr.evaluation.fullref import ms_ssim, psnr_y, rgb_to_y, ssim_y
from tadsr.evaluation.niqe import niqe

__all__ = [
    "ALL_METRICS",
    "MetricSpec",
    "available_metrics",
    "brisque",
    "canonical_name",
    "metric_function",
    "metric_spec",
    "metric_status",
    "ms_ssim",
    "niqe",
    "psnr_y",
    "rgb_to_y",
    "ssim_y",
]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric needs and how to read it."""

    name: str
    full_reference: bool
    higher_better: bool


_CLASSICAL: dict[str, MetricSpec] = {
    "psnr": MetricSpec("psnr", True, True),
    "ssim": MetricSpec("ssim", True, True),
    "ms_ssim": MetricSpec("ms_ssim", True, True),
    "niqe": MetricSpec("niqe", False, False),
    "brisque": MetricSpec("brisque", False, False),
}
_SPECS: dict[str, MetricSpec] = {
    **_CLASSICAL,
    **{k: MetricSpec(k, d.full_reference, d.higher_better) for k, d in DEEP_METRICS.items()},
}
ALL_METRICS: tuple[str, ...] = tuple(_SPECS)
_ALIASES = {"psnr_y": "psnr", "ssim_y": "ssim", "msssim": "ms_ssim", "clip_iqa": "clipiqa"}


class UnknownMetricError(ValueError):
    """A metric name that is not in the registry."""


def canonical_name(name: str) -> str:
    """Lower-case, '-' -> '_', aliases resolved ('PSNR-Y' -> 'psnr', 'MS-SSIM' -> 'ms_ssim')."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        raise UnknownMetricError(f"unknown metric {name!r} (choose from {', '.join(ALL_METRICS)})")
    return key


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of a metric name (aliases allowed)."""
    return _SPECS[canonical_name(name)]


_CLASSICAL_NOTES = {
    "psnr": "PSNR on Y (BT.601), border cropped",
    "ssim": "SSIM on Y (BT.601), 11x11 Gaussian sigma 1.5, border cropped",
    "ms_ssim": "MS-SSIM on Y (5 scales), border cropped; needs >= 176 px",
    "niqe": "NIQE (MATLAB / BasicSR algorithm, pristine model from BasicSR)",
    "brisque": "BRISQUE (original LIVE SVR model)",
}


def metric_status(name: str, brisque_model: str | None = None) -> tuple[bool, str]:
    """(usable now, message) for one metric; learned metrics are checked on disk only.

    ``brisque_model``: the BRISQUE model file, when the caller names one (see brisque.py).
    """
    key = canonical_name(name)
    if key in DEEP_METRICS:
        return deep_status(key)
    if key == "brisque":
        found = find_model(brisque_model)
        if found is None:
            return False, HOW_TO_GET
        return True, f"{_CLASSICAL_NOTES[key]}, model {found}"
    return True, _CLASSICAL_NOTES[key]


def available_metrics(brisque_model: str | None = None) -> dict[str, tuple[bool, str]]:
    """{name: (usable now, message)} for every metric; learned ones are checked on disk."""
    return {name: metric_status(name, brisque_model) for name in ALL_METRICS}


Metric = Callable[[np.ndarray, "np.ndarray | None"], float]


def metric_function(
    name: str, crop_border: int = 4, device: str = "cpu", brisque_model: str | None = None
) -> Metric:
    """A callable ``f(sr_uint8, hr_uint8_or_None) -> float`` for one metric.

    ``crop_border`` applies to the full-reference classical metrics. Learned metrics and the
    BRISQUE model are loaded here (RuntimeError with a clear message naming what is missing).
    """
    key = canonical_name(name)
    full_reference = {"psnr": psnr_y, "ssim": ssim_y, "ms_ssim": ms_ssim}.get(key)
    if full_reference is not None:
        compare = full_reference

        def with_reference(sr: np.ndarray, hr: np.ndarray | None) -> float:
            if hr is None:
                raise ValueError(f"{name} compares with a reference: pass the HR image")
            return compare(sr, hr, crop_border)

        return with_reference
    if key == "niqe":

        def niqe_of(sr: np.ndarray, hr: np.ndarray | None = None) -> float:
            return niqe(sr)

        return niqe_of
    if key == "brisque":
        load_svr(brisque_model)  # RuntimeError naming the file, or saying how to get one

        def brisque_of(sr: np.ndarray, hr: np.ndarray | None = None) -> float:
            return brisque(sr, brisque_model)

        return brisque_of
    return partial(_call_deep, load_deep_metric(key, device))


def _call_deep(fn: Callable[..., float], sr: np.ndarray, hr: np.ndarray | None = None) -> float:
    return fn(sr, hr)
