"""Shared test fixtures: the conformance folder, real photographs, determinism."""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads must yield: with busy-waiting, two threads on a loaded 2-core machine
# run convolutions up to 20x slower than one. Set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TADSR_SHARED", REPO.parent / "shared"))
CONFORMANCE = SHARED / "conformance"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not (CONFORMANCE / "README.md").is_file():
        pytest.skip(f"conformance fixtures not found at {CONFORMANCE} (set TADSR_SHARED)")
    return CONFORMANCE


@pytest.fixture(scope="session")
def photo() -> np.ndarray:  # noqa: F821
    """A real photograph (scikit-image's astronaut, public domain), HxWx3 uint8."""
    from skimage import data

    return data.astronaut()
