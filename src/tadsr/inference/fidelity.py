"""The fidelity <-> realism dial (no torch): `--fidelity auto`'s estimate from an input
(reading a value, and a model's faithful endpoint and default in the registry, are
`tadsr.models.fidelity`).

The dial is ESRGAN's network interpolation (Real-ESRGAN general-x4v3's `-dn`): the realistic
one-step student and a faithful endpoint of the same architecture are blended once, at load,
w = (1 - F) w_realistic + F w_faithful (`tadsr.checkpoints.blend`), and the blend runs as the
student (one evaluation at t = T-1). F = 0 is the student, F = 1 the endpoint.

`--fidelity auto` measures the input's degradation and picks F per image: a noisy or
blocky (JPEG) input gets a HIGHER F, since the faithful endpoint cleans where the realistic
student would turn noise and block edges into invented texture:

    noise  = Immerkaer's fast noise estimate (sigma, 8-bit levels) of the luma's flatter half
    blocks = mean |step| across the 8-pixel JPEG grid / mean |step| inside the blocks
    F      = max(0.15, clip((noise - 2) / 4, 0, 1), clip((blocks - 1.08) / 0.22, 0, 1)),
             rounded to 0.05

The floor of 0.15: a little of the faithful end takes the edge off the student's fine grain
on clean photos; it is the lowest F on the 0.05 grid that keeps clean photos within 0.5 dB of
bicubic on the 9 validation photos. With the stage-5/6 student and the first faithful
endpoint that took 0.2 (0.15 gave 27.00 dB against bicubic's 27.50); the endpoint retrained on
noisy LR (lr_noise) gives more PSNR-Y at the same F, and 0.15 gives clean photos 27.09 dB at NIQE
4.70 and mild real inputs 26.58 / 5.45 (0.2: 27.26 / 4.84 and 26.62 / 5.57).
docs/MODEL_CARD.md has the runs.

On the 9 validation photos a clean (bicubic) LR reads noise 0.4 to 2.4 and blocks 0.93 to
1.06 (F about 0); added Gaussian noise of sigma 6 levels reads about 4 to 5 (F 0.5 to 0.75),
sigma 10 about 7 (F 1); JPEG quality 30 reads blocks 1.27 to 1.97. The set's `heavy` LR
(noise sigma 10-15 then JPEG 50-60, which smooths most of the noise away) reads noise 0.9 to
3.1 and blocks 1.15 to 1.50, its `real` LR (mild) blocks 0.97 to 1.13: the block ramp starts
above every clean photo and reaches F = 1 at 1.30.
"""

from __future__ import annotations

import math

import numpy as np

STEP = 0.05  # `auto` picks F on this grid (and the blended weights are cached by it)
AUTO_FLOOR = 0.15  # the lowest F `auto` picks
NOISE_RANGE = (2.0, 6.0)  # Immerkaer sigma (8-bit levels) mapped to F 0 .. 1
BLOCK_RANGE = (1.08, 1.3)  # JPEG grid / inner step ratio mapped to F 0 .. 1


# --------------------------------------------------------------------------- auto
def _luma(color: np.ndarray, max_value: float) -> np.ndarray:
    """(H, W) luma in 8-bit levels of an (H, W, 1|3) colour array."""
    x = color.astype(np.float32) * np.float32(255.0 / max_value)
    if x.shape[2] == 1:
        return x[..., 0]
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def noise_sigma(luma: np.ndarray) -> float:
    """Immerkaer (1996) fast noise estimate: the luma convolved with the mask
    [[1,-2,1],[-2,4,-2],[1,-2,1]], sigma = sqrt(pi/2) mean|.| / 6, taken over the flatter
    half of the image (central-difference gradient at most its median), so that edges and
    texture are not read as noise (as Tai and Yang's edge-excluding variant)."""
    h, w = luma.shape
    if h < 3 or w < 3:
        return 0.0
    y = luma.astype(np.float64)
    rows = y[:, :-2] - 2 * y[:, 1:-1] + y[:, 2:]  # the 1-D mask along x, then along y
    conv = np.abs(rows[:-2] - 2 * rows[1:-1] + rows[2:])
    grad = np.hypot(y[1:-1, 2:] - y[1:-1, :-2], y[2:, 1:-1] - y[:-2, 1:-1])
    flat = grad <= np.median(grad)
    return float(math.sqrt(math.pi / 2) * conv[flat].mean() / 6.0)


def blockiness(luma: np.ndarray) -> float:
    """Mean |horizontal and vertical step| across the 8-pixel grid over the mean inside the
    blocks (1 for an image without JPEG blocks; 1 when too small to tell)."""
    ratios = []
    for d in (np.abs(np.diff(luma, axis=1)), np.abs(np.diff(luma, axis=0)).T):
        if d.shape[1] < 16:
            continue
        edge = (np.arange(d.shape[1]) % 8) == 7
        inner = d[:, ~edge].mean()
        ratios.append(float(d[:, edge].mean() / inner) if inner > 1e-6 else 1.0)
    return sum(ratios) / len(ratios) if ratios else 1.0


def _ramp(x: float, lo: float, hi: float) -> float:
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def estimate_fidelity(color: np.ndarray, max_value: float = 255.0) -> float:
    """`--fidelity auto` for one image's (H, W, 1|3) colour pixels (see the module doc)."""
    luma = _luma(color, max_value)
    ramps = (_ramp(noise_sigma(luma), *NOISE_RANGE), _ramp(blockiness(luma), *BLOCK_RANGE))
    return round(round(max(AUTO_FLOOR, *ramps) / STEP) * STEP, 2)
