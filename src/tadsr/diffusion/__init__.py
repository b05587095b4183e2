"""The residual-shifting process, the denoiser over a network, and the samplers."""

from tadsr.diffusion.samplers import (
    Denoiser,
    sample_ancestral,
    sample_deterministic,
    sample_one_step,
)
from tadsr.diffusion.schedule import SCHEDULE_PRESETS, Process, ScheduleConfig

__all__ = [
    "SCHEDULE_PRESETS",
    "Denoiser",
    "Process",
    "ScheduleConfig",
    "sample_ancestral",
    "sample_deterministic",
    "sample_one_step",
]
