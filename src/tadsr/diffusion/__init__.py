"""The residual-shifting process and its samplers."""

from tadsr.diffusion.samplers import (
    predict_x0,
    sample_ancestral,
    sample_deterministic,
    sample_one_step,
)
from tadsr.diffusion.schedule import SCHEDULE_PRESETS, Process, ScheduleConfig

__all__ = [
    "SCHEDULE_PRESETS",
    "Process",
    "ScheduleConfig",
    "predict_x0",
    "sample_ancestral",
    "sample_deterministic",
    "sample_one_step",
]
