"""Flat-area loss: the student's invented fine texture where the photo is smooth.

What the realism losses leave at our scale is grain on smooth areas (walls, sky, out-of-focus
backgrounds) and ragged, speckled edges along soft gradients: the regression target (the
teacher's sample) carries that grain, and the discriminator rewards high frequencies
everywhere. This loss weighs the high-pass difference to the HR image by how flat the HR is
around each pixel, so that it speaks only where the photo has no fine detail of its own:

    HP(x) = x - G_sigma * x                                (sigma = 1 HR pixel)
    a     = sqrt(G_2 * mean_c HP(hr)^2)                    local RMS detail of the HR
    m     = exp(-(a / tau)^2)                              1 on flat areas, ~0 on texture
    L     = mean(m |HP(sr) - HP(hr)|)

The absolute error keeps faint grain (a few levels) as costly per pixel as strong grain; the
mask is not differentiated. It plays the part of LDL's artifact map (Liang et al., CVPR
2022) with the HR's own local detail in place of the residual's variance: a smooth HR area is
where any texture the network adds is an artefact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tadsr.losses.regression import gaussian_blur

#: local RMS of the HR's high-pass (in [-1, 1] units) at which the mask falls to 1/e
FLAT_TAU = 0.02


def flat_mask(hr: Tensor, tau: float = FLAT_TAU, sigma: float = 1.0) -> Tensor:
    """(B, 1, H, W) weights in (0, 1]: near 1 where the HR has no fine detail."""
    hp = hr - gaussian_blur(hr, sigma)
    energy = gaussian_blur(hp.square().mean(1, keepdim=True), 2.0)
    return torch.exp(-energy.clamp_min(0) / (tau * tau))


def flat_area_loss(sr: Tensor, hr: Tensor, tau: float = FLAT_TAU, sigma: float = 1.0) -> Tensor:
    """mean(m |HP(sr) - HP(hr)|) over (B, C, H, W) images (see the module doc)."""
    if sr.shape != hr.shape:
        raise ValueError(
            f"sr and hr must have one shape, got {tuple(sr.shape)} and {tuple(hr.shape)}"
        )
    hr = hr.detach()
    with torch.no_grad():
        m = flat_mask(hr, tau, sigma)
    d = sr - hr
    return (m * (d - gaussian_blur(d, sigma)).abs()).mean()  # HP is linear: HP(sr) - HP(hr)
