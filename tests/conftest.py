"""Shared test fixtures: the conformance folder, real photographs, determinism."""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads must yield: with busy-waiting, two threads on a loaded 2-core machine
# run convolutions up to 20x slower than one. Set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

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


# ---- training: a tiny corpus of real photos, validation pairs and a tiny trained teacher
@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """Three real photographs (scikit-image, public domain) as a corpus folder."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(root / f"{name}.png")
    return root


@pytest.fixture(scope="session")
def val_pairs(corpus, tmp_path_factory) -> Path:
    """Two validation pairs: 64-px HR crops and their x4 area-downscaled LR."""
    root = tmp_path_factory.mktemp("val")
    (root / "hr").mkdir()
    (root / "lr").mkdir()
    for name in ("astronaut", "coffee"):
        hr = Image.open(corpus / f"{name}.png").crop((100, 100, 164, 164))
        hr.save(root / "hr" / f"{name}.png")
        hr.reduce(4).save(root / "lr" / f"{name}.png")
    return root


@pytest.fixture(scope="session")
def teacher_file(corpus, val_pairs, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("teacher")
    from tadsr.train.config import resolve
    from tadsr.train.teacher import train_teacher

    items = [
        f"data.root={corpus}",
        "run.threads=1",
        f"data.val_pairs={val_pairs}",
        "run.val_every=4",
    ]
    return train_teacher(resolve("teacher", "tiny", items), run, device="cpu")
