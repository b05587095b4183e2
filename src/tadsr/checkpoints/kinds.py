"""One vocabulary for a model's kind, decided from a file's contents, never from its name.

A super-resolution model is a ``"student"`` (one step: TAD-SR, SinSR, a distillation run)
or a ``"teacher"`` (multi-step: ResShift, a teacher run). Where each file says so:

- our ``.safetensors``: the ``kind`` in its metadata (``sr_student`` / ``sr_teacher``, the
  names of the file format), else its recorded ``steps`` (1 = a student);
- a training checkpoint: its recorded config (a run with a ``teacher`` is a distillation);
- an official ``.pth`` UNet: nothing. ResShift's and SinSR's networks have the same keys and
  shapes, so the weights cannot tell a one-step student from a teacher; such a file loads as
  a teacher (ResShift's schedule, 15 steps) unless the caller says ``kind="student"``, or the
  file is converted with ``tadsr export-official --kind sr_student``, which records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STUDENT = "student"
TEACHER = "teacher"
MODEL_KINDS = (STUDENT, TEACHER)
# the `kind` our weights file records (checkpoints/io.py) -> the model's kind
FILE_KINDS = {"sr_student": STUDENT, "sr_teacher": TEACHER}
OFFICIAL_NOTE = (
    "an official UNet's weights do not say whether it was distilled to one step: loaded as "
    "a multi-step teacher (ResShift); a SinSR / TAD-SR student needs kind='student' (or "
    "tadsr export-official --kind sr_student)"
)


def kind_from_metadata(meta: Mapping[str, Any]) -> str:
    """The kind our weights file records: its ``kind``, else its ``steps`` (1 = student)."""
    recorded = FILE_KINDS.get(str(meta.get("kind")))
    if recorded is not None:
        return recorded
    return STUDENT if str(meta.get("steps")) == "1" else TEACHER


def kind_from_training_config(cfg: Mapping[str, Any]) -> str:
    """A run's kind: a distillation run (it names a teacher) trains a student."""
    return STUDENT if cfg.get("teacher") else TEACHER


def check_kind(kind: str) -> str:
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be 'student' or 'teacher', got {kind!r}")
    return kind
