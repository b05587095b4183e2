"""The residual-shifting process, the denoiser over a network, and the samplers."""

from tadsr.diffusion.samplers import (
    Callback,
    Denoiser,
    StepNoise,
    sample_ancestral,
    sample_deterministic,
    sample_one_step,
)
from tadsr.diffusion.schedule import SCHEDULE_PRESETS, Process, ScheduleConfig

__all__ = [
    "SCHEDULE_PRESETS",
    "Callback",
    "Denoiser",
    "Process",
    "ScheduleConfig",
    "StepNoise",
    "sample_ancestral",
    "sample_deterministic",
    "sample_one_step",
]
